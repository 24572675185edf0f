using System.Collections.Concurrent;
using Akka.Dispatch;

namespace Relay.Actors.Dispatch.Internal;

/// <summary>
/// INTERNAL API. One dedicated thread, optionally pinned to one CPU, running the runnables of
/// one Akka dispatcher in arrival order.
/// </summary>
/// <remarks>
/// Many producers (other cores' actors, the scheduler, the acceptors' completions) post; one
/// thread consumes. The thread owns a <see cref="CoreEventLoop"/>: when it has no runnable it
/// blocks in epoll_wait, so socket readiness and posted work wake it alike, and while it is
/// busy it polls the loop without blocking every <see cref="PollEvery"/> runnables so sockets
/// are never starved by a long queue.
/// Akka shuts an idle dispatcher's executor down after its <c>shutdown-timeout</c> and
/// produces a fresh one on the next message, so threads come and go with load.
/// </remarks>
internal sealed class CoreThreadExecutor : ExecutorService
{
    private readonly ConcurrentQueue<IRunnable> _queue = new();
    /// <summary>Runnables run between two non-blocking polls of the event loop while busy.</summary>
    internal const int PollEvery = 64;

    private readonly CoreEventLoop _loop = new();
    private readonly Thread _thread;
    private readonly CoreThreadOptions _options;
    private readonly Action<Exception> _onRunnableFailure;

    // 1 while the thread is (about to be) blocked in epoll_wait; whoever swaps it back to 0 wakes it.
    private int _sleeping;

    // Execute calls in progress; Shutdown waits for them so no runnable is enqueued after the last drain.
    private int _producers;
    private int _shutdown;

    public CoreThreadExecutor(string id, CoreThreadOptions options, Action<Exception> onRunnableFailure)
        : base(id)
    {
        _options = options;
        _onRunnableFailure = onRunnableFailure;
        _thread = new Thread(Loop)
        {
            Name = options.ThreadName,
            IsBackground = true,
        };
        _thread.Start();
    }

    /// <summary>The executor's thread, for tests and diagnostics.</summary>
    internal Thread Thread => _thread;

    public override void Execute(IRunnable run)
    {
        // Interlocked operations are full fences: either Shutdown sees this producer, or this
        // producer sees _shutdown and rejects (Akka's Dispatcher then retries on the new executor).
        Interlocked.Increment(ref _producers);
        try
        {
            if (Volatile.Read(ref _shutdown) != 0)
            {
                throw new RejectedExecutionException($"Executor {Id} is shut down.", null);
            }

            _queue.Enqueue(run);
            if (Volatile.Read(ref _sleeping) != 0 && Interlocked.Exchange(ref _sleeping, 0) != 0)
            {
                _loop.Wake();
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
        if (Interlocked.Exchange(ref _shutdown, 1) != 0)
        {
            return;
        }

        if (Interlocked.Exchange(ref _sleeping, 0) != 0)
        {
            _loop.Wake();
        }
    }

    private void Loop()
    {
        _loop.MakeCurrent();
        try
        {
            _options.OnThreadStart?.Invoke();
        }
        catch (Exception e)
        {
            // A failed pin or status report must not cost the core its thread: run unpinned.
            Report(e);
        }

        try
        {
            RunUntilShutdown();
        }
        finally
        {
            _loop.Dispose();
        }
    }

    private void RunUntilShutdown()
    {
        var sincePoll = 0;
        while (true)
        {
            if (_queue.TryDequeue(out var run))
            {
                RunSafely(run);
                if (++sincePoll == PollEvery)
                {
                    sincePoll = 0;
                    _loop.Poll(0);
                }

                continue;
            }

            if (Volatile.Read(ref _shutdown) != 0)
            {
                DrainAndExit();
                return;
            }

            if (SpinUntilWork())
            {
                continue;
            }

            Interlocked.Exchange(ref _sleeping, 1);
            if (!_queue.IsEmpty || Volatile.Read(ref _shutdown) != 0)
            {
                // Work arrived while announcing sleep. If a producer already claimed the
                // wake-up, its eventfd write only makes one later poll return early.
                Interlocked.Exchange(ref _sleeping, 0);
                continue;
            }

            sincePoll = 0;
            var events = _loop.Wait(-1);
            // Awake before the events are handed out: the tells they make land on this
            // thread's own queue, and while _sleeping is set each would write the wake
            // eventfd and cost the next wait a spurious return (strace: a write and a read
            // of the eventfd per wake-up, about 4 of each per relayed connection).
            Interlocked.Exchange(ref _sleeping, 0);
            _loop.Dispatch(events);
        }
    }

    private bool SpinUntilWork()
    {
        for (var i = 0; i < _options.SpinIterations; i++)
        {
            // Thread.SpinWait is normalised by the runtime to roughly 35 ns per unit on any CPU.
            Thread.SpinWait(CoreThreadOptions.SpinUnit);
            if (!_queue.IsEmpty || Volatile.Read(ref _shutdown) != 0)
            {
                return true;
            }
        }

        return false;
    }

    private void DrainAndExit()
    {
        var spin = default(SpinWait);
        while (Volatile.Read(ref _producers) != 0)
        {
            spin.SpinOnce();
        }

        while (_queue.TryDequeue(out var run))
        {
            RunSafely(run);
        }
    }

    private void RunSafely(IRunnable run)
    {
        try
        {
            run.Run();
        }
        catch (Exception e)
        {
            // A mailbox run handles actor failures itself; anything reaching here is a bug in a
            // runnable. Report it and keep the core's thread alive for everyone else on it.
            Report(e);
        }
    }

    private void Report(Exception e)
    {
        try
        {
            _onRunnableFailure(e);
        }
        catch
        {
            // The reporter must not take the thread down either.
        }
    }
}

/// <summary>INTERNAL API. How a <see cref="CoreThreadExecutor"/> names, pins and idles its thread.</summary>
internal sealed record CoreThreadOptions(string ThreadName, int SpinIterations, Action? OnThreadStart)
{
    /// <summary>Units passed to <see cref="Thread.SpinWait"/> between two looks at the queue.</summary>
    public const int SpinUnit = 20;
}
