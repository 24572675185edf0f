using System.Collections.Concurrent;
using Akka.Configuration;
using Akka.Dispatch;

namespace Relay.Host.Logging.Internal;

/// <summary>
/// INTERNAL API. The executor of Akka's logger actor (<c>akka.loggers-dispatcher</c>, see
/// <see cref="RelayLogging.AkkaHocon"/>): one thread of its own, which runs what was queued
/// a <see cref="BatchingTextSink.Linger"/> after the first of it arrived.
/// </summary>
/// <remarks>
/// Each log event is a message to the logger actor, and a message to an idle actor asks its
/// executor to run the actor's mailbox. On the thread pool that woke a worker per
/// CircuitClosed line; on a thread of its own (Akka's PinnedDispatcher) it still woke that
/// thread per line whenever the actor had caught up. Here only the first message after a run
/// wakes the thread, and the thread lets the burst gather before it runs the mailbox, so a
/// busy relay pays one wake-up per linger for its whole log, not one per connection.
/// Akka creates the configurator by reflection from the dispatcher's <c>executor</c> key,
/// which is why it is public.
/// </remarks>
public sealed class LingeringExecutorConfigurator : ExecutorServiceConfigurator
{
    public LingeringExecutorConfigurator(Config config, IDispatcherPrerequisites prerequisites)
        : base(config, prerequisites)
    {
    }

    public override ExecutorService Produce(string id) => new LingeringExecutor(id, BatchingTextSink.Linger);
}

/// <inheritdoc cref="LingeringExecutorConfigurator"/>
internal sealed class LingeringExecutor : ExecutorService
{
    private readonly ConcurrentQueue<IRunnable> _queue = new();
    // Neither wait spins (spinCount 0): SemaphoreSlim and a default ManualResetEventSlim spin
    // with sched_yield before they block, and with one wake per burst of lines this thread's
    // spinning was 3 sched_yield calls per connection under Connection: close load (strace -c).
    private readonly ManualResetEventSlim _wake = new(false, spinCount: 0);
    private readonly ManualResetEventSlim _stopping = new(false, spinCount: 0);
    private readonly TimeSpan _linger;
    private readonly Thread _thread;
    private int _signalled;

    // Execute calls in progress; Shutdown waits for them so nothing is queued after the last run.
    private int _producers;

    public LingeringExecutor(string id, TimeSpan linger)
        : base(id)
    {
        _linger = linger;
        _thread = new Thread(Loop) { IsBackground = true, Name = "relay-logger" };
        _thread.Start();
    }

    public override void Execute(IRunnable run)
    {
        // Interlocked operations are full fences: either Shutdown sees this producer, or this
        // producer sees the stop and rejects (Akka's Dispatcher then retries on a new executor).
        Interlocked.Increment(ref _producers);
        try
        {
            if (_stopping.IsSet)
            {
                throw new RejectedExecutionException($"Executor {Id} is shut down.", null);
            }

            _queue.Enqueue(run);
            if (Interlocked.Exchange(ref _signalled, 1) == 0)
            {
                _wake.Set();
            }
        }
        finally
        {
            Interlocked.Decrement(ref _producers);
        }
    }

    /// <summary>Stops the thread once it has run everything already queued. Idempotent.</summary>
    public override void Shutdown()
    {
        if (_stopping.IsSet)
        {
            return;
        }

        _stopping.Set();
        _wake.Set();
    }

    private void Loop()
    {
        while (true)
        {
            _wake.Wait();
            _wake.Reset(); // before the linger: whoever queues after it sets it again (see _signalled)
            var stopping = _stopping.Wait(_linger);
            // Cleared before the queue is read, so a runnable queued during the run wakes it again.
            Volatile.Write(ref _signalled, 0);
            RunQueued();
            if (stopping)
            {
                var spin = new SpinWait();
                while (Volatile.Read(ref _producers) != 0)
                {
                    spin.SpinOnce();
                }

                RunQueued();
                return;
            }
        }
    }

    private void RunQueued()
    {
        while (_queue.TryDequeue(out var run))
        {
            try
            {
                run.Run();
            }
            catch (Exception e)
            {
                // A mailbox run handles actor failures itself; this is the logger's own thread,
                // so Serilog's diagnostics channel is the place to say what went wrong.
                Serilog.Debugging.SelfLog.WriteLine("Relay logger executor {0}: a runnable threw: {1}", Id, e);
            }
        }
    }
}
