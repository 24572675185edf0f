using Akka.Actor;
using Akka.Event;

namespace Relay.Host.Logging;

/// <summary>
/// An Akka logging adapter whose <c>IsDebugEnabled</c> (and the others) follow the event
/// stream's level as it is now, so <see cref="RelayLogging.SetLevel(ActorSystem, Serilog.Events.LogEventLevel)"/>
/// reaches actors that already hold their logger.
/// </summary>
/// <remarks>
/// Akka's own <see cref="BusLogging"/> (what <c>Context.GetLogger()</c> returns) fixes its
/// levels when it is created (checked in Akka 1.5.74), so a long-lived actor would never log
/// Debug after a run-time change, and keeps creating Debug events after the level is raised
/// (the bus then drops them). This adapter reads one field per check instead. It needs only
/// Akka, so actors in Relay.Actors can use the same type if it moves there.
/// </remarks>
public sealed class LiveLevelLoggingAdapter : LoggingAdapterBase
{
    private readonly BusLogging _bus;

    public LiveLevelLoggingAdapter(BusLogging bus)
        : base(bus.Formatter)
    {
        _bus = bus;
    }

    public override bool IsDebugEnabled => _bus.Bus.LogLevel <= LogLevel.DebugLevel;

    public override bool IsInfoEnabled => _bus.Bus.LogLevel <= LogLevel.InfoLevel;

    public override bool IsWarningEnabled => _bus.Bus.LogLevel <= LogLevel.WarningLevel;

    public override bool IsErrorEnabled => _bus.Bus.LogLevel <= LogLevel.ErrorLevel;

    /// <summary>The adapter for an actor: <c>Context.GetLiveLevelLogger()</c> in place of <c>Context.GetLogger()</c>.</summary>
    public static ILoggingAdapter For(IActorContext context)
    {
        var adapter = context.GetLogger();
        return adapter is BusLogging bus ? new LiveLevelLoggingAdapter(bus) : adapter;
    }

    protected override void NotifyLog(LogLevel logLevel, object message, Exception cause)
    {
        LogEvent logEvent = logLevel switch
        {
            LogLevel.DebugLevel => new Debug(cause, _bus.LogSource, _bus.LogClass, message),
            LogLevel.InfoLevel => new Info(cause, _bus.LogSource, _bus.LogClass, message),
            LogLevel.WarningLevel => new Warning(cause, _bus.LogSource, _bus.LogClass, message),
            _ => new Error(cause, _bus.LogSource, _bus.LogClass, message),
        };
        _bus.Bus.Publish(logEvent);
    }
}

/// <summary>Extension for actors: <c>private readonly ILoggingAdapter _log = Context.GetLiveLevelLogger();</c></summary>
public static class LiveLevelLoggingExtensions
{
    public static ILoggingAdapter GetLiveLevelLogger(this IActorContext context) => LiveLevelLoggingAdapter.For(context);
}
