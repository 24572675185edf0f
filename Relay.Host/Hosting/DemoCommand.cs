using Relay.Actors.Configuration;
using Relay.Host.Cli;
using Relay.Host.Demo;
using Relay.Host.Logging;
using Serilog.Core;
using Serilog.Events;

namespace Relay.Host.Hosting;

/// <summary><c>relay demo</c>: the embedded default config, a built-in upstream, live progress.</summary>
public static class DemoCommand
{
    public static async Task<int> RunAsync(DemoRequest request, TextWriter stdout, CancellationToken cancellation)
    {
        // Warnings only: one Information line per circuit would drown the progress display.
        var levelSwitch = new LoggingLevelSwitch(LogEventLevel.Warning);
        await using var logger = RelayLogging.CreateLogger(request.LogFormat, levelSwitch);
        var defaults = RelaySettings.Create(RelayConfigLoader.EmbeddedDefaults);
        var akkaConfig = Akka.Configuration.ConfigurationFactory.ParseString("akka.loglevel = WARNING")
            .WithFallback(RelayLogging.AkkaConfig);
        return await DemoRunner.RunAsync(defaults, akkaConfig, TimeSpan.FromSeconds(request.Seconds), request.Circuits,
            stdout, cancellation, [new RelayLoggingSetup(logger, levelSwitch)]);
    }
}
