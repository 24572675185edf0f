using Relay.Host.Logging;
using Serilog.Core;
using Serilog.Events;

namespace Relay.Tests.Logging;

public sealed class RelayLoggingTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("relay-log-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void Rolling_file_gets_the_same_CLEF_lines_as_the_console()
    {
        var console = new LogCapture();
        using (var logger = RelayLogging.CreateLogger(LogFormat.Json, new LoggingLevelSwitch(), console, Path.Combine(_directory, "relay-.clef")))
        {
            logger.Information("{EventName:l} on {Route}", "ListenerBound", "jumbo-out");
        }

        var file = Assert.Single(Directory.GetFiles(_directory, "relay-*.clef"));
        var line = Assert.Single(File.ReadAllLines(file));
        Assert.Equal(Assert.Single(console.Lines()), line);
        Assert.Contains("\"Route\":\"jumbo-out\"", line);
    }

    [Fact]
    public void Level_switch_filters_the_logger_at_run_time()
    {
        var console = new LogCapture();
        var levelSwitch = new LoggingLevelSwitch(LogEventLevel.Information);
        using var logger = RelayLogging.CreateLogger(LogFormat.Text, levelSwitch, console);

        logger.Debug("hidden");
        levelSwitch.MinimumLevel = LogEventLevel.Debug;
        logger.Debug("shown");
        logger.Information("marker");

        // Written in order by one writer: once the marker is there, a hidden line would be too.
        console.WaitForLine(l => l.EndsWith(" INF marker", StringComparison.Ordinal));
        Assert.Matches(" DBG shown$", Assert.Single(console.Lines(), l => !l.EndsWith(" INF marker", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData(LogEventLevel.Verbose, Akka.Event.LogLevel.DebugLevel)]
    [InlineData(LogEventLevel.Debug, Akka.Event.LogLevel.DebugLevel)]
    [InlineData(LogEventLevel.Information, Akka.Event.LogLevel.InfoLevel)]
    [InlineData(LogEventLevel.Warning, Akka.Event.LogLevel.WarningLevel)]
    [InlineData(LogEventLevel.Error, Akka.Event.LogLevel.ErrorLevel)]
    [InlineData(LogEventLevel.Fatal, Akka.Event.LogLevel.ErrorLevel)]
    public void Serilog_levels_map_to_the_nearest_Akka_level(LogEventLevel serilog, Akka.Event.LogLevel akka)
    {
        Assert.Equal(akka, RelayLogging.ToAkkaLevel(serilog));
    }

    [Fact]
    public void Akka_config_names_the_bridge_types_by_the_relay_assembly()
    {
        var config = RelayLogging.AkkaConfig;

        Assert.Equal(["Relay.Host.Logging.SerilogLogger, relay"], config.GetStringList("akka.loggers"));
        Assert.Equal(typeof(SerilogLogger), Type.GetType(config.GetStringList("akka.loggers")[0]));
        Assert.Equal(typeof(SerilogLogMessageFormatter), Type.GetType(config.GetString("akka.logger-formatter")));
    }
}
