using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;
using Akka.Actor;
using Akka.Event;
using Relay.Actors.Logging;
using Relay.Host.Logging;
using Serilog.Core;
using Serilog.Events;
using static Relay.Tests.Support.ExternalProcess;

namespace Relay.Tests.Logging;

/// <summary>
/// The catalogue of events, docs/OPERATIONS.md and the source agree on one list of events,
/// and an entry writes the line its template promises.
/// </summary>
public sealed class RelayEventsTests : IDisposable
{
    private const string EventNameHole = "{EventName:l}";

    private static readonly IReadOnlyList<(string Field, RelayEvent Event)> Catalogue = typeof(RelayEvents)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.FieldType == typeof(RelayEvent))
        .Select(f => (f.Name, (RelayEvent)f.GetValue(null)!))
        .ToArray();

    private readonly LogCapture _capture = new();
    private ActorSystem? _system;

    public void Dispose() => _system?.Terminate().Wait(TimeSpan.FromSeconds(10));

    [Fact]
    public void The_operations_guide_lists_exactly_the_events_of_the_catalogue()
    {
        var documented = DocumentedEvents().Select(e => e.Name).ToHashSet();
        var catalogued = Catalogue.Select(e => e.Event.Name).ToHashSet();

        Assert.Empty(catalogued.Except(documented).Order());
        Assert.Empty(documented.Except(catalogued).Order());
    }

    [Fact]
    public void The_operations_guide_gives_each_event_its_catalogue_level()
    {
        var documented = DocumentedEvents().ToDictionary(e => e.Name, e => e.Level);

        foreach (var (field, relayEvent) in Catalogue)
        {
            var level = RelayLogging.ToSerilogLevel(relayEvent.Level).ToString();
            Assert.True(documented.TryGetValue(relayEvent.Name, out var cell) && cell.Contains(level, StringComparison.Ordinal),
                $"{field}: docs/OPERATIONS.md gives {relayEvent.Name} the level '{cell}', the catalogue {level}");
        }
    }

    [Fact]
    public void Every_template_starts_with_the_event_name_and_no_entry_is_written_twice()
    {
        Assert.All(Catalogue, e => Assert.StartsWith(EventNameHole + " ", e.Event.Template, StringComparison.Ordinal));
        Assert.All(Catalogue, e => Assert.Equal(1, e.Event.Template.Split(EventNameHole).Length - 1));
        Assert.Equal(Catalogue.Count, Catalogue.Select(e => (e.Event.Name, e.Event.Template)).Distinct().Count());
    }

    [Fact]
    public void No_template_is_written_outside_the_catalogue_and_every_entry_is_written_somewhere()
    {
        var catalogueFile = Path.Combine("Relay.Actors", "Logging", "RelayEvents.cs");
        var sources = SourceFiles().Where(f => !f.Relative.Equals(catalogueFile, StringComparison.Ordinal)).ToArray();

        var inline = sources
            .SelectMany(f => f.Lines.Select((line, i) => (f.Relative, Line: i + 1, Text: line.TrimStart())))
            .Where(l => !l.Text.StartsWith("//", StringComparison.Ordinal) && l.Text.Contains('"' + EventNameHole, StringComparison.Ordinal))
            .Select(l => $"{l.Relative}:{l.Line}");
        Assert.Empty(inline);

        var code = string.Join('\n', sources.SelectMany(f => f.Lines));
        var unused = Catalogue.Where(e => !Regex.IsMatch(code, $@"\bRelayEvents\.{e.Field}\b")).Select(e => e.Field);
        Assert.Empty(unused);
    }

    [Fact]
    public void An_event_written_through_Akka_carries_its_template_name_properties_and_exception()
    {
        var actor = StartSystem().ActorOf(Props.Create(() => new FailingCircuit()), "circuit");

        actor.Tell("upstream table corrupt");

        var json = _capture.WaitForJson(j => Property(j, "EventName") == RelayEvents.CircuitFailed.Name);
        Assert.Equal(RelayEvents.CircuitFailed.Template, Property(json, "@mt"));
        Assert.Equal("Error", Property(json, "@l"));
        Assert.Equal("web", Property(json, "Route"));
        Assert.Equal("upstream table corrupt", Property(json, "Error"));
        Assert.Contains("InvalidOperationException: upstream table corrupt", Property(json, "@x"));
    }

    [Fact]
    public void A_long_event_at_an_overridden_level_carries_every_property()
    {
        var actor = StartSystem().ActorOf(Props.Create(() => new FailingCircuit()), "circuit");

        actor.Tell(42L);

        var json = _capture.WaitForJson(j => Property(j, "EventName") == RelayEvents.CircuitClosed.Name);
        Assert.Equal(RelayEvents.CircuitClosed.Template, Property(json, "@mt"));
        Assert.Equal("Warning", Property(json, "@l"));
        Assert.Equal(42, json.GetProperty("CircuitId").GetInt64());
        Assert.Equal(" (peer gone)", Property(json, "Detail"));
        Assert.Equal(7, json.GetProperty("DurationMs").GetInt64());
    }

    private ActorSystem StartSystem()
    {
        var levelSwitch = new LoggingLevelSwitch(LogEventLevel.Information);
        var logger = RelayLogging.CreateLogger(LogFormat.Json, levelSwitch, _capture);
        var bootstrap = BootstrapSetup.Create().WithConfig(RelayLogging.AkkaConfig);
        _system = ActorSystem.Create("relay", bootstrap.And(new RelayLoggingSetup(logger, levelSwitch)));
        return _system;
    }

    /// <summary>The rows of the event table in docs/OPERATIONS.md: each name in a row's first cell, with the row's level cell.</summary>
    private static IEnumerable<(string Name, string Level)> DocumentedEvents()
    {
        var rows = File.ReadLines(FindInRepo("docs/OPERATIONS.md"))
            .SkipWhile(line => !line.StartsWith("| EventName |", StringComparison.Ordinal))
            .Skip(2)
            .TakeWhile(line => line.StartsWith('|'))
            .Select(line => line.Split('|'))
            .ToArray();
        Assert.NotEmpty(rows);
        return rows.SelectMany(cells => Regex.Matches(cells[1], "`([A-Za-z]+)`").Select(m => (m.Groups[1].Value, cells[2].Trim())));
    }

    private static IEnumerable<(string Relative, string[] Lines)> SourceFiles()
    {
        var root = Path.GetDirectoryName(Path.GetDirectoryName(FindInRepo("docs/OPERATIONS.md")))!;
        var separator = Path.DirectorySeparatorChar;
        return new[] { "Relay.Actors", "Relay.Host" }
            .SelectMany(project => Directory.EnumerateFiles(Path.Combine(root, project), "*.cs", SearchOption.AllDirectories))
            .Select(path => Path.GetRelativePath(root, path))
            .Where(relative => !relative.Contains($"{separator}bin{separator}") && !relative.Contains($"{separator}obj{separator}"))
            .Select(relative => (relative, File.ReadAllLines(Path.Combine(root, relative))));
    }

    private static string? Property(JsonElement json, string name) =>
        json.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    /// <summary>Writes two catalogue events: a failure with its exception, and a long event at another level.</summary>
    private sealed class FailingCircuit : ReceiveActor
    {
        public FailingCircuit()
        {
            var log = Context.GetLogger();
            Receive<string>(problem => RelayEvents.CircuitFailed.LogException(log, new InvalidOperationException(problem), "web", problem));
            Receive<long>(id => RelayEvents.CircuitClosed.LogAt(log, LogLevel.WarningLevel,
                id, "web", "10.0.0.1:5000", "10.0.0.2:80", "client-reset", " (peer gone)", 10L, 20L, 7L));
        }
    }
}
