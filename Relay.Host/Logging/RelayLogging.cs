using System.Text;
using Akka.Actor;
using Akka.Configuration;
using Relay.Host.Logging.Internal;
using Serilog;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Formatting.Compact;
using AkkaLogLevel = Akka.Event.LogLevel;

namespace Relay.Host.Logging;

/// <summary>
/// The one Serilog pipeline of the process: the host, ASP.NET Core and Akka all write to it.
/// </summary>
/// <example>
/// <code>
/// var levelSwitch = new LoggingLevelSwitch(LogEventLevel.Information);
/// var logger = RelayLogging.CreateLogger(LogFormat.Json, levelSwitch);
/// var bootstrap = BootstrapSetup.Create().WithConfig(config.WithFallback(RelayLogging.AkkaConfig));
/// var system = ActorSystem.Create("relay", bootstrap.And(new RelayLoggingSetup(logger, levelSwitch)));
/// </code>
/// </example>
public static class RelayLogging
{
    /// <summary>
    /// The Akka keys that route Akka's logging into Serilog. Add as a fallback under the
    /// user's config, so a user may still raise <c>akka.loglevel</c>.
    /// </summary>
    public const string AkkaHocon = """
        akka {
          # Akka's log events go to the Serilog pipeline, nowhere else.
          loggers = ["Relay.Host.Logging.SerilogLogger, relay"]
          # The logger actor on a thread of its own that runs a burst of log events at a time
          # (LingeringExecutor). On the thread pool each CircuitClosed line woke a worker:
          # 36 context switches and ~95 us of CPU per connection, against ~1 switch with
          # logging off (ops/bench/loopback-cost.sh, RESULTS.md "The per-connection log line").
          loggers-dispatcher = "akka.actor.relay-logger-dispatcher"
          actor.relay-logger-dispatcher {
            type = Dispatcher
            executor = "Relay.Host.Logging.Internal.LingeringExecutorConfigurator, relay"
            # A run takes the whole burst the thread let gather.
            throughput = 1000
          }
          # What the logger has not yet written when the system stops it goes to Serilog,
          # not to Akka's raw stdout lines (SerilogLoggerMailboxType).
          actor.mailbox.logger-queue.mailbox-type = "Relay.Host.Logging.Internal.SerilogLoggerMailboxType, relay"
          # Renders named templates ({CircuitId}, {EventName:l}) the way Serilog does, for
          # anything that calls LogMessage.ToString() (TestKit filters, the stdout logger).
          logger-formatter = "Relay.Host.Logging.SerilogLogMessageFormatter, relay"
          # Akka drops events below this level before they reach Serilog; keep it in step
          # with the Serilog level switch through RelayLogging.SetLevel.
          loglevel = INFO
          # The stdout logger prints raw lines before the Serilog logger starts and after it
          # stops; they would break one-JSON-object-per-line output, so it stays silent.
          stdout-loglevel = OFF
        }
        """;

    /// <summary><see cref="AkkaHocon"/>, parsed.</summary>
    public static Config AkkaConfig { get; } = ConfigurationFactory.ParseString(AkkaHocon);

    /// <summary>
    /// Builds the process logger. Text goes to standard output unless <paramref name="output"/>
    /// is given (tests capture with it); <paramref name="rollingFilePath"/> adds a daily
    /// rolling file in the same format.
    /// </summary>
    public static Logger CreateLogger(
        LogFormat format,
        LoggingLevelSwitch levelSwitch,
        TextWriter? output = null,
        string? rollingFilePath = null)
    {
        ArgumentNullException.ThrowIfNull(levelSwitch);

        ITextFormatter formatter = format switch
        {
            LogFormat.Text => new TextLogFormatter(levelSwitch),
            LogFormat.Json => new CompactJsonFormatter(),
            _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
        };

        var configuration = new LoggerConfiguration().MinimumLevel.ControlledBy(levelSwitch);

        // Rendered and written off the logger actor's thread, a burst per write: see BatchingTextSink.
        configuration = configuration.WriteTo.Sink(new BatchingTextSink(output ?? StandardOutput(), formatter));

        if (rollingFilePath is not null)
        {
            // A week of daily files, each capped at 100 MB, so a chatty Debug session cannot
            // fill the appliance's disk.
            configuration = configuration.WriteTo.File(
                formatter,
                rollingFilePath,
                rollingInterval: RollingInterval.Day,
                retainedFileCountLimit: 7,
                fileSizeLimitBytes: 100L * 1024 * 1024,
                rollOnFileSizeLimit: true);
        }

        return configuration.CreateLogger();
    }

    // The console sink's bytes (Console.Out: the console's encoding, no byte-order mark, "\n"),
    // with a buffer that the writer flushes once per burst instead of once per line.
    private static StreamWriter StandardOutput()
    {
        var encoding = Console.OutputEncoding.CodePage == Encoding.UTF8.CodePage
            ? new UTF8Encoding(encoderShouldEmitUTF8Identifier: false)
            : Console.OutputEncoding;
        return new StreamWriter(Console.OpenStandardOutput(), encoding, bufferSize: 64 * 1024) { AutoFlush = false };
    }

    /// <summary>
    /// Changes the level at run time, in Serilog (the switch from the system's
    /// <see cref="RelayLoggingSetup"/>) and in Akka, which otherwise filters Debug events
    /// before they are even created.
    /// </summary>
    /// <exception cref="InvalidOperationException">The system was not created with a <see cref="RelayLoggingSetup"/>.</exception>
    public static void SetLevel(ActorSystem system, LogEventLevel level)
    {
        ArgumentNullException.ThrowIfNull(system);

        var setup = system.Settings.Setup.Get<RelayLoggingSetup>();
        if (!setup.HasValue)
        {
            throw new InvalidOperationException(
                $"actor system '{system.Name}' has no {nameof(RelayLoggingSetup)}, so its Serilog level switch is unknown");
        }

        SetLevel(system, setup.Value.LevelSwitch, level);
    }

    /// <summary>As <see cref="SetLevel(ActorSystem, LogEventLevel)"/>, with the switch given.</summary>
    public static void SetLevel(ActorSystem system, LoggingLevelSwitch levelSwitch, LogEventLevel level)
    {
        ArgumentNullException.ThrowIfNull(system);
        ArgumentNullException.ThrowIfNull(levelSwitch);

        levelSwitch.MinimumLevel = level;
        system.EventStream.SetLogLevel(ToAkkaLevel(level));
    }

    /// <summary>Akka has no Verbose or Fatal: they map to its nearest level.</summary>
    public static AkkaLogLevel ToAkkaLevel(LogEventLevel level) => level switch
    {
        LogEventLevel.Verbose or LogEventLevel.Debug => AkkaLogLevel.DebugLevel,
        LogEventLevel.Information => AkkaLogLevel.InfoLevel,
        LogEventLevel.Warning => AkkaLogLevel.WarningLevel,
        _ => AkkaLogLevel.ErrorLevel,
    };

    /// <summary>The Serilog level of an Akka level.</summary>
    public static LogEventLevel ToSerilogLevel(AkkaLogLevel level) => level switch
    {
        AkkaLogLevel.DebugLevel => LogEventLevel.Debug,
        AkkaLogLevel.InfoLevel => LogEventLevel.Information,
        AkkaLogLevel.WarningLevel => LogEventLevel.Warning,
        _ => LogEventLevel.Error,
    };
}
