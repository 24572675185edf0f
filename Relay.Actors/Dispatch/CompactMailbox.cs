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

/// <summary>
/// INTERNAL API. See <see cref="CompactMailbox"/>.
/// <para>
/// The oldest waiting envelope is kept in a field and a <see cref="Queue{T}"/> is made only
/// when a second one waits behind it: an idle actor (every idle circuit's supervisor and
/// reader) then holds no queue or array at all, 112 B less per actor than a queue made up
/// front (ops/bench/idle-heap.md). An actor that once had two messages waiting keeps its
/// queue, so a busy one does not make it again and again.
/// </para>
/// <para>
/// Any thread may enqueue; the mailbox's run dequeues. Every read and write of the head, the
/// queue and the count is under the lock; <see cref="HasMessages"/> and <see cref="Count"/>
/// read the count without it, as the mailbox's scheduling checks do. The lock is this object
/// itself, which only its mailbox can reach, rather than a further object per actor.
/// </para>
/// </summary>
public sealed class CompactMessageQueue : IMessageQueue, IUnboundedMessageQueueSemantics
{
    private Envelope _head;
    private Queue<Envelope>? _rest;
    private int _count;

    public bool HasMessages => Volatile.Read(ref _count) > 0;

    public int Count => Volatile.Read(ref _count);

    public void Enqueue(IActorRef receiver, Envelope envelope)
    {
        lock (this)
        {
            if (_count == 0)
            {
                _head = envelope;
            }
            else
            {
                (_rest ??= new Queue<Envelope>(4)).Enqueue(envelope);
            }

            Volatile.Write(ref _count, _count + 1);
        }
    }

    public bool TryDequeue(out Envelope envelope)
    {
        if (Volatile.Read(ref _count) == 0)
        {
            envelope = default;
            return false;
        }

        lock (this)
        {
            if (_count == 0)
            {
                envelope = default;
                return false;
            }

            envelope = _head;
            // The next oldest moves up; with none left the field lets go of the message.
            if (_rest is null || !_rest.TryDequeue(out _head))
            {
                _head = default;
            }

            Volatile.Write(ref _count, _count - 1);
            return true;
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
