using System.Text.Json;
using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Relay.Host.Logging;
using Serilog.Core;
using Serilog.Events;

namespace Relay.Tests.Logging;

public sealed class SerilogLoggerTests : IDisposable
{
    private readonly LogCapture _capture = new();
    private readonly LoggingLevelSwitch _levelSwitch = new(LogEventLevel.Information);
    private readonly List<ActorSystem> _systems = [];

    public void Dispose()
    {
        foreach (var system in _systems)
        {
            system.Terminate().Wait(TimeSpan.FromSeconds(10));
        }
    }

    [Fact]
    public void Circuit_event_becomes_a_CLEF_line_with_its_template_properties()
    {
        var system = StartSystem(LogFormat.Json);
        var actor = system.ActorOf(Props.Create(() => new CircuitLike()), "circuit-42");

        actor.Tell(new CircuitLike.Close(42, "eof"));

        var json = _capture.WaitForJson(j => Property(j, "EventName") == "CircuitClosed");
        Assert.Equal(JsonValueKind.Number, json.GetProperty("CircuitId").ValueKind);
        Assert.Equal(42, json.GetProperty("CircuitId").GetInt64());
        Assert.Equal("eof", json.GetProperty("Reason").GetString());
        Assert.Equal(CircuitLike.ClosedTemplate, json.GetProperty("@mt").GetString());
        Assert.True(json.TryGetProperty("@t", out _));
        // CLEF leaves @l out for Information; any other level is named.
        Assert.False(json.TryGetProperty("@l", out _));
        Assert.Contains("/user/circuit-42", json.GetProperty("LogSource").GetString());
        Assert.Equal("/user/circuit-42", json.GetProperty("ActorPath").GetString());
        Assert.Equal(JsonValueKind.Number, json.GetProperty("Thread").ValueKind);
        Assert.Equal(typeof(CircuitLike).FullName, json.GetProperty("SourceContext").GetString());
    }

    [Fact]
    public void Warning_carries_its_level_in_CLEF()
    {
        var system = StartSystem(LogFormat.Json);
        var actor = system.ActorOf(Props.Create(() => new CircuitLike()));

        actor.Tell(new CircuitLike.Lose(7));

        var json = _capture.WaitForJson(j => Property(j, "EventName") == "CircuitLost");
        Assert.Equal("Warning", json.GetProperty("@l").GetString());
        Assert.Equal(7, json.GetProperty("CircuitId").GetInt64());
    }

    [Fact]
    public void Circuit_event_renders_as_plain_text_with_the_bare_event_name()
    {
        var system = StartSystem(LogFormat.Text);
        var actor = system.ActorOf(Props.Create(() => new CircuitLike()));

        actor.Tell(new CircuitLike.Close(42, "eof"));

        var line = _capture.WaitForLine(l => l.Contains("CircuitClosed"));
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INF CircuitClosed circuit 42 closed: eof$", line);
    }

    [Fact]
    public void A_relay_warning_from_an_actor_renders_like_every_relay_event_without_the_actor_path()
    {
        var system = StartSystem(LogFormat.Text);
        var actor = system.ActorOf(Props.Create(() => new CircuitLike()), "circuit-7");

        actor.Tell(new CircuitLike.Lose(7));

        var line = _capture.WaitForLine(l => l.Contains("CircuitLost"));
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WRN CircuitLost circuit 7$", line);
    }

    [Fact]
    public void Actor_crash_arrives_as_an_Error_event_with_its_exception()
    {
        var system = StartSystem(LogFormat.Json);
        var actor = system.ActorOf(Props.Create(() => new CircuitLike()), "crasher");

        actor.Tell(new CircuitLike.Crash("upstream table corrupt"));

        var json = _capture.WaitForJson(j => Property(j, "@l") == "Error");
        Assert.Contains("upstream table corrupt", json.GetProperty("@x").GetString());
        Assert.Contains("InvalidOperationException", json.GetProperty("@x").GetString());
        Assert.Contains("/user/crasher", json.GetProperty("LogSource").GetString());
    }

    [Fact]
    public void Actor_crash_in_text_is_one_line_until_the_level_is_Debug()
    {
        var system = StartSystem(LogFormat.Text);
        var actor = system.ActorOf(Props.Create(() => new CircuitLike()), "crasher");

        actor.Tell(new CircuitLike.Crash("first"));
        var summary = _capture.WaitForLine(l => l.Contains(" ERR ") && l.Contains("first"));
        Assert.Matches(@" ERR \[/user/crasher\] first \| System.InvalidOperationException: first$", summary);
        Assert.DoesNotContain(_capture.Lines(), l => l.TrimStart().StartsWith("at ", StringComparison.Ordinal));

        RelayLogging.SetLevel(system, LogEventLevel.Debug);
        actor.Tell(new CircuitLike.Crash("second"));
        _capture.WaitForLine(l => l.TrimStart().StartsWith("at ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Akkas_own_semantic_events_keep_their_named_properties()
    {
        // The system stays up after the shutdown run: otherwise its termination races the
        // logger actor for the very line this test waits on (seen once under load).
        var system = StartSystem(LogFormat.Json, "akka.coordinated-shutdown { terminate-actor-system = off, run-by-actor-system-terminate = off }");

        // Akka logs "CoordinatedShutdown invoked due to [Reason:{Reason}]. Exiting with
        // [ExitCode:{ExitCode}]." with named properties; they must survive the bridge.
        await Akka.Actor.CoordinatedShutdown.Get(system).Run(Akka.Actor.CoordinatedShutdown.ClrExitReason.Instance);

        var json = _capture.WaitForJson(j => Property(j, "@mt")?.StartsWith("CoordinatedShutdown invoked", StringComparison.Ordinal) == true);
        Assert.Contains("ClrExitReason", Property(json, "Reason"));
        Assert.Equal(0, json.GetProperty("ExitCode").GetInt32());
        Assert.Equal("Akka.Actor.CoordinatedShutdown", Property(json, "SourceContext"));
    }

    [Fact]
    public void Dead_letter_arrives_through_the_same_pipeline()
    {
        var system = StartSystem(LogFormat.Json);

        // The dead-letter listener subscribes asynchronously after the system starts, so
        // the first letters may go unreported; keep posting until one is.
        JsonElement? json = null;
        for (var attempt = 0; attempt < 20 && json is null; attempt++)
        {
            system.DeadLetters.Tell(new CircuitLike.Close(attempt, "nobody home"));
            try
            {
                json = _capture.WaitForJson(j => Property(j, "Message")?.Contains("not delivered") == true, TimeSpan.FromMilliseconds(250));
            }
            catch (Xunit.Sdk.XunitException)
            {
                // not yet subscribed
            }
        }

        Assert.NotNull(json);
        Assert.Contains("Close", Property(json.Value, "Message"));
        Assert.Equal("{Message}", Property(json.Value, "@mt"));
        Assert.Equal("akka://relay/deadLetters", Property(json.Value, "LogSource"));
    }

    [Fact]
    public void SetLevel_Debug_lets_debug_events_through_and_Information_filters_them_again()
    {
        var system = StartSystem(LogFormat.Json);
        var actor = system.ActorOf(Props.Create(() => new CircuitLike(true)));

        actor.Tell(new CircuitLike.Chunk(1, 100));
        actor.Tell(new CircuitLike.Close(1, "marker-1"));
        _capture.WaitForJson(j => Property(j, "Reason") == "marker-1");
        Assert.DoesNotContain(_capture.Lines(), l => l.Contains("CircuitChunk"));
        Assert.Equal(Akka.Event.LogLevel.InfoLevel, system.EventStream.LogLevel);

        RelayLogging.SetLevel(system, LogEventLevel.Debug);
        Assert.Equal(LogEventLevel.Debug, _levelSwitch.MinimumLevel);
        Assert.Equal(Akka.Event.LogLevel.DebugLevel, system.EventStream.LogLevel);
        actor.Tell(new CircuitLike.Chunk(1, 200));
        var debug = _capture.WaitForJson(j => Property(j, "EventName") == "CircuitChunk");
        Assert.Equal("Debug", debug.GetProperty("@l").GetString());
        Assert.Equal(200, debug.GetProperty("Bytes").GetInt32());

        RelayLogging.SetLevel(system, LogEventLevel.Information);
        actor.Tell(new CircuitLike.Chunk(1, 300));
        actor.Tell(new CircuitLike.Close(1, "marker-2"));
        _capture.WaitForJson(j => Property(j, "Reason") == "marker-2");
        Assert.DoesNotContain(_capture.Lines(), l => l.Contains("\"Bytes\":300"));
    }

    [Fact]
    public void After_SetLevel_Debug_an_actor_with_Akkas_own_adapter_logs_debug_too()
    {
        var system = StartSystem(LogFormat.Json);

        // Akka's BusLogging takes the level when it is created: actors started after the
        // change see it, with no help from this project.
        RelayLogging.SetLevel(system, LogEventLevel.Debug);
        var actor = system.ActorOf(Props.Create(() => new CircuitLike(false)));
        actor.Tell(new CircuitLike.Chunk(2, 400));

        var debug = _capture.WaitForJson(j => Property(j, "EventName") == "CircuitChunk");
        Assert.Equal(2, debug.GetProperty("CircuitId").GetInt64());
    }

    [Fact]
    public void Without_a_setup_SetLevel_says_what_is_missing()
    {
        using var system = ActorSystem.Create("plain", RelayLogging.AkkaConfig);

        var error = Assert.Throws<InvalidOperationException>(() => RelayLogging.SetLevel(system, LogEventLevel.Debug));
        Assert.Contains(nameof(RelayLoggingSetup), error.Message);
    }

    private ActorSystem StartSystem(LogFormat format, string? extraConfig = null)
    {
        var logger = RelayLogging.CreateLogger(format, _levelSwitch, _capture);
        var config = extraConfig is null
            ? RelayLogging.AkkaConfig
            : ConfigurationFactory.ParseString(extraConfig).WithFallback(RelayLogging.AkkaConfig);
        var bootstrap = BootstrapSetup.Create().WithConfig(config);
        var system = ActorSystem.Create("relay", bootstrap.And(new RelayLoggingSetup(logger, _levelSwitch)));
        _systems.Add(system);
        return system;
    }

    private static string? Property(JsonElement json, string name) =>
        json.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    /// <summary>Logs the way the relay's circuit actors do.</summary>
    private sealed class CircuitLike : ReceiveActor
    {
        public const string ClosedTemplate = "{EventName:l} circuit {CircuitId} closed: {Reason}";

        public CircuitLike()
            : this(false)
        {
        }

        public CircuitLike(bool liveLevel)
        {
            var log = liveLevel ? Context.GetLiveLevelLogger() : Context.GetLogger();
            Receive<Close>(m => log.Info(ClosedTemplate, "CircuitClosed", m.CircuitId, m.Reason));
            Receive<Lose>(m => log.Warning("{EventName:l} circuit {CircuitId}", "CircuitLost", m.CircuitId));
            Receive<Chunk>(m => log.Debug("{EventName:l} circuit {CircuitId} moved {Bytes} bytes", "CircuitChunk", m.CircuitId, m.Bytes));
            Receive<Crash>(m => throw new InvalidOperationException(m.Reason));
        }

        public sealed record Close(long CircuitId, string Reason);

        public sealed record Lose(long CircuitId);

        public sealed record Chunk(long CircuitId, int Bytes);

        public sealed record Crash(string Reason);
    }
}
