using Microsoft.Extensions.Logging;
using Serilog.Events;
using MelLogger = Microsoft.Extensions.Logging.ILogger;

namespace Relay.Host.Management.Internal;

/// <summary>
/// INTERNAL API. Sends ASP.NET Core's Microsoft.Extensions.Logging output into the relay's
/// Serilog pipeline (Serilog.Extensions.Logging is not on the feed). Only the rendered message,
/// the category (as <c>SourceContext</c>) and the exception are kept: ASP.NET logs here only
/// at Warning and above, where the text is what an operator reads.
/// </summary>
internal sealed class SerilogLoggerProvider : ILoggerProvider
{
    private readonly Serilog.ILogger _log;

    public SerilogLoggerProvider(Serilog.ILogger log)
    {
        _log = log;
    }

    public MelLogger CreateLogger(string categoryName) =>
        new Adapter(_log.ForContext(Serilog.Core.Constants.SourceContextPropertyName, categoryName));

    public void Dispose()
    {
        // The Serilog logger belongs to the host, which disposes it after everything else.
    }

    private static LogEventLevel ToSerilog(LogLevel level) => level switch
    {
        LogLevel.Trace => LogEventLevel.Verbose,
        LogLevel.Debug => LogEventLevel.Debug,
        LogLevel.Information => LogEventLevel.Information,
        LogLevel.Warning => LogEventLevel.Warning,
        LogLevel.Error => LogEventLevel.Error,
        _ => LogEventLevel.Fatal,
    };

    private sealed class Adapter : MelLogger
    {
        private readonly Serilog.ILogger _log;

        public Adapter(Serilog.ILogger log)
        {
            _log = log;
        }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None && _log.IsEnabled(ToSerilog(logLevel));

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            _log.Write(ToSerilog(logLevel), exception, "{Message}", formatter(state, exception));
        }
    }
}
