using Akka.Actor;
using Akka.Event;
using Relay.Host.Logging;
using Serilog.Core;

namespace Relay.Tests.Logging;

public sealed class LoggerShutdownTests
{
    [Fact]
    public async Task Events_logged_just_before_the_system_terminates_reach_the_Serilog_log_not_Akkas_stdout_lines()
    {
        const int Events = 300;
        var capture = new LogCapture();
        var levelSwitch = new LoggingLevelSwitch();
        var logger = RelayLogging.CreateLogger(LogFormat.Json, levelSwitch, capture);
        var system = ActorSystem.Create("relay", BootstrapSetup.Create().WithConfig(RelayLogging.AkkaConfig)
            .And(new RelayLoggingSetup(logger, levelSwitch)));
        var log = Akka.Event.Logging.GetLogger(system, "shutdown-test");

        // The logger runs a burst at a time, so these are still queued when its Stop arrives.
        for (var i = 0; i < Events; i++)
        {
            log.Info("{EventName:l} line {Index}", "LastLine", i);
        }

        await system.Terminate().WaitAsync(TimeSpan.FromSeconds(30));
        logger.Dispose();

        var indexes = capture.Lines()
            .Select(LogCapture.TryParse)
            .Where(j => j is { } json && json.TryGetProperty("EventName", out var name) && name.GetString() == "LastLine")
            .Select(j => j!.Value.GetProperty("Index").GetInt32())
            .ToList();
        Assert.Equal(Enumerable.Range(0, Events), indexes);
    }
}
