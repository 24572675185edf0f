using System.Globalization;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Formatting.Display;

namespace Relay.Host.Logging.Internal;

/// <summary>
/// INTERNAL API. The console text format: <c>2025-01-31T12:00:00.123Z INF CircuitClosed ...</c>.
/// </summary>
/// <remarks>
/// An exception is summarised on the event's own line (type and message, inner ones too)
/// unless the level switch is at Debug or below, when the full stack trace follows. An
/// operator reading a console wants one line per event; a developer at Debug wants the
/// trace. The time is UTC so lines from several nodes sort together. Warnings and errors
/// from Akka itself name their source (<c>ERR [/user/relay/listener-a] ...</c>): an actor
/// crash message alone rarely says which actor it was. The relay's own events (those with
/// an <c>EventName</c>) never do, whatever logged them: their text names the route or
/// circuit, and every one of them starts the same way, <c>WRN ProxyHeaderRejected route ...</c>
/// as <c>INF CircuitClosed circuit ...</c>. The JSON format keeps <c>ActorPath</c> on all.
/// </remarks>
internal sealed class TextLogFormatter : ITextFormatter
{
    // {Message:lj}: strings bare (no quotes), structured values as JSON.
    private static readonly MessageTemplateTextFormatter Head = new(
        "{UtcTimestamp:yyyy-MM-ddTHH:mm:ss.fffZ} {Level:u3} ", CultureInfo.InvariantCulture);

    private static readonly MessageTemplateTextFormatter Message = new("{Message:lj}", CultureInfo.InvariantCulture);

    private readonly LoggingLevelSwitch _levelSwitch;

    public TextLogFormatter(LoggingLevelSwitch levelSwitch)
    {
        _levelSwitch = levelSwitch;
    }

    public void Format(LogEvent logEvent, TextWriter output)
    {
        Head.Format(logEvent, output);
        if (logEvent.Level >= LogEventLevel.Warning && !logEvent.Properties.ContainsKey("EventName") && Source(logEvent) is { } source)
        {
            output.Write('[');
            output.Write(source);
            output.Write("] ");
        }

        Message.Format(logEvent, output);

        if (logEvent.Exception is { } exception)
        {
            if (_levelSwitch.MinimumLevel <= LogEventLevel.Debug)
            {
                output.WriteLine();
                output.Write(exception.ToString());
            }
            else
            {
                output.Write(" | ");
                WriteSummary(exception, output);
            }
        }

        output.WriteLine();
    }

    private static string? Source(LogEvent logEvent) =>
        (logEvent.Properties.GetValueOrDefault("ActorPath") ?? logEvent.Properties.GetValueOrDefault("LogSource"))
            is ScalarValue { Value: string source }
            ? source
            : null;

    private static void WriteSummary(Exception exception, TextWriter output)
    {
        for (Exception? current = exception; current is not null; current = current.InnerException)
        {
            if (!ReferenceEquals(current, exception))
            {
                output.Write(" ---> ");
            }

            output.Write(current.GetType().FullName);
            output.Write(": ");
            output.Write(current.Message.ReplaceLineEndings(" "));
        }
    }
}
