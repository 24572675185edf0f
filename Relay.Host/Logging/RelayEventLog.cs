using Relay.Actors.Logging;
using Serilog;

namespace Relay.Host.Logging;

/// <summary>
/// Writes a <see cref="RelayEvents"/> entry to a Serilog logger, as the entry's own methods
/// write to an Akka adapter: <c>RelayEvents.RelayStarted.Log(logger, version, node, ...)</c>.
/// </summary>
/// <remarks>
/// Costs what Serilog's own level methods cost when the level is on: one <c>object[]</c> of
/// the template's values. The host's events are written once per start, reload or
/// management request, so one method for every length is worth the boxing of a value-type
/// argument even when the level is off.
/// </remarks>
public static class RelayEventLog
{
    public static void Log(this RelayEvent relayEvent, ILogger logger, params ReadOnlySpan<object?> args) =>
        Write(relayEvent, logger, null, args);

    /// <summary>An event about a failure: <paramref name="cause"/> travels as the event's exception.</summary>
    public static void LogException(this RelayEvent relayEvent, ILogger logger, Exception cause, params ReadOnlySpan<object?> args) =>
        Write(relayEvent, logger, cause, args);

    private static void Write(RelayEvent relayEvent, ILogger logger, Exception? cause, ReadOnlySpan<object?> args)
    {
        var level = RelayLogging.ToSerilogLevel(relayEvent.Level);
        if (logger.IsEnabled(level))
        {
            logger.Write(level, cause, relayEvent.Template, relayEvent.WithName(args));
        }
    }
}
