using Akka.Actor;
using Relay.Actors.Dispatch;

namespace Relay.Tests.Dispatch;

/// <summary>
/// The core dispatchers' mailbox queue: first in, first out, each message once, across the
/// boundary between its inline head and the queue it makes for a second waiting message,
/// with any number of threads enqueueing while one dequeues.
/// </summary>
public sealed class CompactMessageQueueSpecs
{
    [Fact]
    public void Messages_come_out_in_the_order_they_went_in_whether_one_or_many_wait()
    {
        var queue = new CompactMessageQueue();
        Assert.False(queue.HasMessages);
        Assert.False(queue.TryDequeue(out _));

        queue.Enqueue(ActorRefs.Nobody, new Envelope(1, ActorRefs.Nobody));
        Assert.Equal(1, Take(queue));
        Assert.False(queue.HasMessages);

        foreach (var n in new[] { 2, 3, 4 })
        {
            queue.Enqueue(ActorRefs.Nobody, new Envelope(n, ActorRefs.Nobody));
        }

        Assert.Equal(3, queue.Count);
        Assert.Equal(2, Take(queue));
        queue.Enqueue(ActorRefs.Nobody, new Envelope(5, ActorRefs.Nobody));
        Assert.Equal([3, 4, 5], new[] { Take(queue), Take(queue), Take(queue) });
        Assert.Equal(0, queue.Count);
        Assert.False(queue.TryDequeue(out var none));
        Assert.Null(none.Message);

        // Empty again after the queue was made: the head takes the next one, then the queue.
        queue.Enqueue(ActorRefs.Nobody, new Envelope(6, ActorRefs.Nobody));
        queue.Enqueue(ActorRefs.Nobody, new Envelope(7, ActorRefs.Nobody));
        Assert.Equal([6, 7], new[] { Take(queue), Take(queue) });
        Assert.False(queue.HasMessages);
    }

    [Fact]
    public void Concurrent_senders_lose_and_duplicate_nothing_and_each_senders_order_holds()
    {
        const int senders = 4;
        const int perSender = 50_000;
        var queue = new CompactMessageQueue();
        var start = new Barrier(senders + 1);
        var threads = Enumerable.Range(0, senders).Select(s => new Thread(() =>
        {
            start.SignalAndWait();
            for (var i = 0; i < perSender; i++)
            {
                queue.Enqueue(ActorRefs.Nobody, new Envelope((s, i), ActorRefs.Nobody));
            }
        }) { IsBackground = true }).ToList();
        threads.ForEach(t => t.Start());

        var next = new int[senders];
        var received = 0;
        var deadline = Environment.TickCount64 + 60_000;
        start.SignalAndWait();
        while (received < senders * perSender && Environment.TickCount64 < deadline)
        {
            if (!queue.TryDequeue(out var envelope))
            {
                Thread.Yield();
                continue;
            }

            var (sender, seq) = ((int, int))envelope.Message;
            Assert.Equal(next[sender], seq);
            next[sender]++;
            received++;
        }

        threads.ForEach(t => Assert.True(t.Join(TimeSpan.FromSeconds(30)), "a sender did not finish"));
        Assert.Equal(senders * perSender, received);
        Assert.All(next, n => Assert.Equal(perSender, n));
        Assert.False(queue.TryDequeue(out _));
        Assert.Equal(0, queue.Count);
    }

    private static int Take(CompactMessageQueue queue)
    {
        Assert.True(queue.TryDequeue(out var envelope));
        return (int)envelope.Message;
    }
}
