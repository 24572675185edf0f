using System.Globalization;
using Akka.Event;
using Serilog;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting.Display;

namespace Relay.Host.Logging;

/// <summary>
/// Akka's <c>akka.logger-formatter</c>: renders a log call's message template with Serilog's
/// own parser and binder, so <c>{EventName:l}</c>, <c>{CircuitId}</c>, <c>{0}</c>,
/// <c>{@Value}</c> and format specifiers read the same wherever Akka turns a message into
/// text (TestKit event filters, the stdout logger) as they do on the Serilog console.
/// </summary>
/// <remarks>
/// The <see cref="SerilogLogger"/> actor does not use this: it binds the raw template and
/// arguments itself, so properties stay structured. Akka creates this type by name, hence the
/// public parameterless constructor.
/// </remarks>
public sealed class SerilogLogMessageFormatter : ILogMessageFormatter
{
    // A logger with no sink: used only for its template parser, cache and property binder.
    private static readonly Logger Binder = new LoggerConfiguration().CreateLogger();

    // The message part of the console format, so both render values identically.
    private static readonly MessageTemplateTextFormatter Renderer =
        new("{Message:lj}", CultureInfo.InvariantCulture);

    public string Format(string format, params object[] args) => Render(format, args);

    public string Format(string format, IEnumerable<object> args) =>
        Render(format, args as object[] ?? args?.ToArray());

    private static string Render(string format, object?[]? args)
    {
        if (string.IsNullOrEmpty(format))
        {
            return string.Empty;
        }

        if (!Binder.BindMessageTemplate(format, args, out var template, out var properties))
        {
            return format;
        }

        var logEvent = new Serilog.Events.LogEvent(
            DateTimeOffset.UnixEpoch, LogEventLevel.Information, exception: null, template, properties);
        using var output = new StringWriter(CultureInfo.InvariantCulture);
        Renderer.Format(logEvent, output);
        return output.ToString();
    }
}
