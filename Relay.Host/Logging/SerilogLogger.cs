using Akka.Actor;
using Akka.Dispatch;
using Akka.Event;
using Serilog.Events;
using AkkaLogEvent = Akka.Event.LogEvent;
using SerilogLogEvent = Serilog.Events.LogEvent;

namespace Relay.Host.Logging;

/// <summary>
/// Akka's logger actor (<c>akka.loggers</c>): writes every Akka log event, Relay's own and
/// Akka's internal ones alike, to the Serilog logger of the system's
/// <see cref="RelayLoggingSetup"/>, or to <see cref="Serilog.Log.Logger"/> without one.
/// </summary>
/// <remarks>
/// The template and arguments of <c>log.Info("{EventName:l} circuit {CircuitId} ...", ...)</c>
/// are bound by Serilog itself, so each named hole becomes a structured property. Each event
/// also carries <c>SourceContext</c> (the logging class), <c>LogSource</c>, <c>ActorPath</c>
/// (when the source is an actor) and <c>Thread</c>, and keeps the time and trace context of
/// the log call rather than the time this actor got round to it.
/// <para>
/// Akka.Logger.Serilog (1.5.69) does the same job but cannot be given a logger: Akka makes
/// logger actors from a type name with no arguments, and its actor writes to the global
/// <see cref="Serilog.Log.Logger"/>. A process here holds several systems with their own
/// pipelines (test classes run relays in parallel in one process, each capturing its own
/// output), so the logger travels in <see cref="RelayLoggingSetup"/> instead. Its actor also
/// stamps <c>Timestamp</c> as a property rather than the event's time and drops the trace
/// context, and writes plain messages as <c>{Message:l}</c>, which CLEF copies into <c>@r</c>.
/// </para>
/// </remarks>
public sealed class SerilogLogger : UntypedActor, IRequiresMessageQueue<ILoggerMessageQueueSemantics>
{
    // Used when Akka hands over something that is not a template (a plain string or object):
    // never parse text as a template, its braces are not holes. No ":l" here: CLEF would copy
    // the whole text into "@r", and the text format prints strings bare anyway.
    private const string PlainMessageTemplate = "{Message}";

    private readonly Serilog.ILogger? _logger;

    public SerilogLogger()
    {
        var setup = Context.System.Settings.Setup.Get<RelayLoggingSetup>();
        _logger = setup.HasValue ? setup.Value.Logger : null;
    }

    // Read per event, so a host that assigns Log.Logger after the system started is honoured.
    private Serilog.ILogger Logger => _logger ?? Serilog.Log.Logger;

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case AkkaLogEvent logEvent:
                try
                {
                    Write(Logger, logEvent);
                }
                catch (Exception e)
                {
                    // A crash here would be logged to this same actor and could loop; Serilog's
                    // own diagnostics channel is the one place left to say what went wrong.
                    Serilog.Debugging.SelfLog.WriteLine("Relay SerilogLogger dropped an Akka event from {0}: {1}", logEvent.LogSource, e);
                }

                break;
            case InitializeLogger:
                Sender.Tell(new LoggerInitialized());
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    /// <summary>Converts one Akka event and writes it; the actor's whole job, callable without it.</summary>
    internal static void Write(Serilog.ILogger logger, AkkaLogEvent logEvent)
    {
        var level = RelayLogging.ToSerilogLevel(logEvent.LogLevel());
        if (!logger.IsEnabled(level))
        {
            return;
        }

        string template;
        object?[] args;
        if (logEvent.Message is LogMessage logMessage)
        {
            template = logMessage.Format;
            args = logMessage.Parameters().ToArray();
        }
        else
        {
            template = PlainMessageTemplate;
            args = [logEvent.Message?.ToString() ?? string.Empty];
        }

        if (!logger.BindMessageTemplate(template, args, out var parsed, out var bound))
        {
            return;
        }

        // Akka stamps events with DateTime.UtcNow when the log call is made.
        var timestamp = new DateTimeOffset(DateTime.SpecifyKind(logEvent.Timestamp, DateTimeKind.Utc));
        var serilogEvent = logEvent.ActivityContext is { } activity
            ? new SerilogLogEvent(timestamp, level, logEvent.Cause, parsed, bound, activity.TraceId, activity.SpanId)
            : new SerilogLogEvent(timestamp, level, logEvent.Cause, parsed, bound);

        // Template properties win: a template that names {LogSource} keeps its own value.
        if (logEvent.LogClass is { } logClass)
        {
            serilogEvent.AddPropertyIfAbsent(Property(Serilog.Core.Constants.SourceContextPropertyName, logClass.FullName));
        }

        serilogEvent.AddPropertyIfAbsent(Property("LogSource", logEvent.LogSource));
        if (logEvent.LogSource is { } source && ActorPath.TryParse(source, out var actorPath))
        {
            serilogEvent.AddPropertyIfAbsent(Property("ActorPath", actorPath.ToStringWithoutAddress()));
        }

        serilogEvent.AddPropertyIfAbsent(new LogEventProperty("Thread", new ScalarValue(logEvent.Thread?.ManagedThreadId)));

        logger.Write(serilogEvent);
    }

    private static LogEventProperty Property(string name, string? value) => new(name, new ScalarValue(value));
}
