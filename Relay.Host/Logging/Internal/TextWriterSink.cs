using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;

namespace Relay.Host.Logging.Internal;

/// <summary>
/// INTERNAL API. Writes formatted events to any <see cref="TextWriter"/>; Serilog's core has
/// no such sink and the console sink cannot be pointed elsewhere, which tests need.
/// </summary>
internal sealed class TextWriterSink : ILogEventSink
{
    private readonly TextWriter _output;
    private readonly ITextFormatter _formatter;
    private readonly Lock _lock = new();

    public TextWriterSink(TextWriter output, ITextFormatter formatter)
    {
        _output = output;
        _formatter = formatter;
    }

    public void Emit(LogEvent logEvent)
    {
        // Sinks are called from any thread; one event must stay one uninterrupted line.
        lock (_lock)
        {
            _formatter.Format(logEvent, _output);
            _output.Flush();
        }
    }
}
