using Akka.Actor.Setup;
using Serilog.Core;

namespace Relay.Host.Logging;

/// <summary>
/// Hands an <see cref="Akka.Actor.ActorSystem"/> the Serilog logger its
/// <see cref="SerilogLogger"/> actor writes to, and the switch that sets its level.
/// </summary>
/// <remarks>
/// Akka creates logger actors by type name from <c>akka.loggers</c>, so nothing can be passed
/// to their constructor. An Akka <see cref="Setup"/> travels with the system instead of a
/// process-wide static, so two systems in one process (cluster tests, parallel test classes)
/// each log to their own pipeline. Without this setup the actor falls back to Serilog's
/// global <see cref="Serilog.Log.Logger"/>, the convention of every Serilog integration.
/// </remarks>
public sealed class RelayLoggingSetup : Setup
{
    public RelayLoggingSetup(Serilog.ILogger logger, LoggingLevelSwitch levelSwitch)
    {
        Logger = logger;
        LevelSwitch = levelSwitch;
    }

    /// <summary>Where Akka's log events go.</summary>
    public Serilog.ILogger Logger { get; }

    /// <summary>The switch <see cref="RelayLogging.CreateLogger"/> was given; <see cref="RelayLogging.SetLevel"/> moves it.</summary>
    public LoggingLevelSwitch LevelSwitch { get; }
}
