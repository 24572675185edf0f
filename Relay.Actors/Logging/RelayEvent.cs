using Akka.Event;

namespace Relay.Actors.Logging;

/// <summary>
/// One entry of the <see cref="RelayEvents"/> catalogue: the stable <see cref="Name"/> an
/// operator queries by (the <c>EventName</c> property), its <see cref="Level"/> and its
/// message <see cref="Template"/>. The template's first hole is always <c>{EventName:l}</c>,
/// which the entry fills with its name, so a call passes only the event's own properties.
/// </summary>
/// <remarks>
/// Writes through an Akka <see cref="ILoggingAdapter"/> cost what Akka's own level methods
/// cost: nothing is allocated when the level is off, and up to five properties travel in
/// Akka's generic <c>LogMessage&lt;LogValues&lt;…&gt;&gt;</c> (one allocation, values boxed only
/// when a logger renders them). Longer events take one <c>object[]</c>, as Akka's
/// <c>Log(level, format, object[])</c> does; the <c>params ReadOnlySpan</c> that carries their
/// values lives on the stack, but a value-type argument is boxed at the call, before the
/// level check, as it would be into an array built by the caller. Relay.Host writes to Serilog through its own extensions
/// (<c>RelayEventLog</c>), since this project does not reference Serilog.
/// </remarks>
public sealed class RelayEvent
{
    public RelayEvent(string name, LogLevel level, string template)
    {
        Name = name;
        Level = level;
        Template = template;
    }

    /// <summary>The <c>EventName</c>, listed in docs/OPERATIONS.md.</summary>
    public string Name { get; }

    /// <summary>The level the event is written at, unless a call names another with <see cref="LogAt"/>.</summary>
    public LogLevel Level { get; }

    /// <summary>The message template, starting with <c>{EventName:l}</c>.</summary>
    public string Template { get; }

    /// <summary>Writes the event at its <see cref="Level"/> when <paramref name="log"/> has that level on.</summary>
    public void Log<T1>(ILoggingAdapter log, T1 arg1)
    {
        if (log.IsEnabled(Level))
        {
            log.Log(Level, null, Template, Name, arg1);
        }
    }

    public void Log<T1, T2>(ILoggingAdapter log, T1 arg1, T2 arg2)
    {
        if (log.IsEnabled(Level))
        {
            log.Log(Level, null, Template, Name, arg1, arg2);
        }
    }

    public void Log<T1, T2, T3>(ILoggingAdapter log, T1 arg1, T2 arg2, T3 arg3)
    {
        if (log.IsEnabled(Level))
        {
            log.Log(Level, null, Template, Name, arg1, arg2, arg3);
        }
    }

    public void Log<T1, T2, T3, T4>(ILoggingAdapter log, T1 arg1, T2 arg2, T3 arg3, T4 arg4)
    {
        if (log.IsEnabled(Level))
        {
            log.Log(Level, null, Template, Name, arg1, arg2, arg3, arg4);
        }
    }

    public void Log<T1, T2, T3, T4, T5>(ILoggingAdapter log, T1 arg1, T2 arg2, T3 arg3, T4 arg4, T5 arg5)
    {
        if (log.IsEnabled(Level))
        {
            log.Log(Level, null, Template, Name, arg1, arg2, arg3, arg4, arg5);
        }
    }

    /// <summary>
    /// An event about a failure: <paramref name="cause"/> travels as the event's exception.
    /// A name of its own, because as an overload of <c>Log</c> an exception of a derived type
    /// would bind to a generic <c>Log</c> as the first property instead.
    /// </summary>
    public void LogException<T1>(ILoggingAdapter log, Exception cause, T1 arg1)
    {
        if (log.IsEnabled(Level))
        {
            log.Log(Level, cause, Template, Name, arg1);
        }
    }

    /// <inheritdoc cref="LogException{T1}(ILoggingAdapter, Exception, T1)"/>
    public void LogException<T1, T2>(ILoggingAdapter log, Exception cause, T1 arg1, T2 arg2)
    {
        if (log.IsEnabled(Level))
        {
            log.Log(Level, cause, Template, Name, arg1, arg2);
        }
    }

    /// <summary>An event with more properties than Akka's generic messages carry.</summary>
    public void Log(ILoggingAdapter log, params ReadOnlySpan<object?> args)
    {
        if (log.IsEnabled(Level))
        {
            log.Log(Level, null, Template, WithName(args));
        }
    }

    /// <summary>
    /// The event at <paramref name="level"/> rather than its catalogue level, for the one
    /// event whose level depends on what happened (a quiet null circuit closes at Debug).
    /// The caller has checked <paramref name="level"/> against the event stream, whose level
    /// follows a change at run time; an adapter (Akka's <c>BusLogging</c>) keeps the levels of
    /// the moment it was made, and the caller may have made it on demand only after that check.
    /// </summary>
    public void LogAt(ILoggingAdapter log, LogLevel level, params ReadOnlySpan<object?> args) =>
        log.Log(level, null, Template, WithName(args));

    /// <summary>The template's arguments: this event's name for <c>{EventName:l}</c>, then <paramref name="args"/>.</summary>
    public object?[] WithName(ReadOnlySpan<object?> args)
    {
        var all = new object?[args.Length + 1];
        all[0] = Name;
        args.CopyTo(all.AsSpan(1));
        return all;
    }

    public override string ToString() => Name;
}
