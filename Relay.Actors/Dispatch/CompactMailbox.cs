using Akka.Actor;
using Akka.Configuration;
using Akka.Dispatch;
using Akka.Dispatch.MessageQueues;

namespace Relay.Actors.Dispatch;

/// <summary>
/// The mailbox of every actor on a core dispatcher: a small queue under a lock instead of
/// Akka's default ConcurrentQueue.
/// <para>
/// A circuit's actors (its supervisor, its reader, and a writer once a destination falls
/// behind) almost always hold zero to a few messages, all sent from their own core thread,
/// so the lock is uncontended. The default queue allocates a first segment of 32 envelope
/// slots per actor whether it is used or not, about 2 KB per actor in the idle-memory test
/// (Relay.Tests/Circuits/IdleMemoryTests). A queue that starts with room for 4 and grows on
/// demand keeps idle circuits small.
/// </para>
/// </summary>
public sealed class CompactMailbox : MailboxType, IProducesMessageQueue<CompactMessageQueue>
{
    public CompactMailbox(Settings settings, Config config)
        : base(settings, config)
    {
    }

    public override IMessageQueue Create(IActorRef owner, ActorSystem system) => new CompactMessageQueue();
}

/// <summary>INTERNAL API. See <see cref="CompactMailbox"/>.</summary>
public sealed class CompactMessageQueue : IMessageQueue, IUnboundedMessageQueueSemantics
{
    private readonly Queue<Envelope> _queue = new(4);
    private int _count;

    public bool HasMessages => Volatile.Read(ref _count) > 0;

    public int Count => Volatile.Read(ref _count);

    public void Enqueue(IActorRef receiver, Envelope envelope)
    {
        lock (_queue)
        {
            _queue.Enqueue(envelope);
            Volatile.Write(ref _count, _queue.Count);
        }
    }

    public bool TryDequeue(out Envelope envelope)
    {
        if (Volatile.Read(ref _count) == 0)
        {
            envelope = default;
            return false;
        }

        lock (_queue)
        {
            var found = _queue.TryDequeue(out envelope);
            Volatile.Write(ref _count, _queue.Count);
            return found;
        }
    }

    public void CleanUp(IActorRef owner, IMessageQueue deadletters)
    {
        while (TryDequeue(out var envelope))
        {
            deadletters.Enqueue(owner, envelope);
        }
    }
}
