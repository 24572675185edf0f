using Akka.Actor;
using Akka.Configuration;
using Akka.Dispatch;
using Akka.Dispatch.MessageQueues;
using Akka.Event;

namespace Relay.Host.Logging.Internal;

/// <summary>
/// INTERNAL API. The mailbox of the <see cref="SerilogLogger"/> actor
/// (<c>akka.actor.mailbox.logger-queue</c>, see <see cref="RelayLogging.AkkaHocon"/>): Akka's
/// logger mailbox, except that the events still queued when the system stops its loggers
/// are written to the Serilog logger instead of Akka's standard-out logger.
/// </summary>
/// <remarks>
/// Akka stops its loggers last when the system terminates, and an actor's Stop is handled
/// before the messages queued ahead of it: what was logged in the moment before went to
/// Akka's raw <c>[INFO][date][Thread]</c> lines on stdout, which also break one JSON object
/// per line. The logger's executor runs a burst at a time (<see cref="LingeringExecutorConfigurator"/>),
/// so that moment is now up to a linger long, and a shutdown's last lines (Akka's
/// "Exiting with" line, a drain's last CircuitClosed lines) would land in it.
/// Akka creates the mailbox type by reflection from the config, which is why it is public.
/// </remarks>
public sealed class SerilogLoggerMailboxType : MailboxType, IProducesMessageQueue<SerilogLoggerMessageQueue>
{
    public SerilogLoggerMailboxType(Settings settings, Config config)
        : base(settings, config)
    {
    }

    public override IMessageQueue Create(IActorRef owner, ActorSystem system)
    {
        var setup = system.Settings.Setup.Get<RelayLoggingSetup>();
        return new SerilogLoggerMessageQueue(setup.HasValue ? setup.Value.Logger : null);
    }
}

/// <inheritdoc cref="SerilogLoggerMailboxType"/>
public sealed class SerilogLoggerMessageQueue : IMessageQueue, IUnboundedMessageQueueSemantics, ILoggerMessageQueueSemantics
{
    private readonly UnboundedMessageQueue _queue = new();
    private readonly Serilog.ILogger? _logger;

    public SerilogLoggerMessageQueue(Serilog.ILogger? logger)
    {
        _logger = logger;
    }

    public bool HasMessages => _queue.HasMessages;

    public int Count => _queue.Count;

    public void Enqueue(IActorRef receiver, Envelope envelope) => _queue.Enqueue(receiver, envelope);

    public bool TryDequeue(out Envelope envelope) => _queue.TryDequeue(out envelope);

    public void CleanUp(IActorRef owner, IMessageQueue deadletters)
    {
        var logger = _logger ?? Serilog.Log.Logger;
        while (_queue.TryDequeue(out var envelope))
        {
            if (envelope.Message is LogEvent logEvent)
            {
                try
                {
                    SerilogLogger.Write(logger, logEvent);
                }
                catch (Exception e)
                {
                    Serilog.Debugging.SelfLog.WriteLine("Relay SerilogLogger dropped an Akka event at shutdown from {0}: {1}", logEvent.LogSource, e);
                }
            }
        }
    }
}
