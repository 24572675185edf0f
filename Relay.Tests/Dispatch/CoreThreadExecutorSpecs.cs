using Akka.Dispatch;
using Relay.Actors.Dispatch;
using Relay.Actors.Dispatch.Internal;

namespace Relay.Tests.Dispatch;

public sealed class CoreThreadExecutorSpecs
{
    [Fact]
    public void A_throwing_runnable_does_not_kill_the_thread()
    {
        var failures = new List<Exception>();
        var executor = new CoreThreadExecutor("test", new CoreThreadOptions("relay-core-t", 4, null), e => { lock (failures) { failures.Add(e); } });
        try
        {
            var ran = new ManualResetEventSlim();
            executor.Execute(new Runnable(() => throw new InvalidOperationException("boom")));
            executor.Execute(new Runnable(ran.Set));

            Assert.True(ran.Wait(TimeSpan.FromSeconds(10)));
            lock (failures)
            {
                Assert.IsType<InvalidOperationException>(Assert.Single(failures));
            }

            Assert.True(executor.Thread.IsAlive);
        }
        finally
        {
            executor.Shutdown();
        }
    }

    [Fact]
    public void Shutdown_runs_what_was_queued_then_stops_the_thread_and_rejects_new_work()
    {
        var executor = new CoreThreadExecutor("test", new CoreThreadOptions("relay-core-t", 0, null), _ => { });
        var count = 0;
        for (var i = 0; i < 1000; i++)
        {
            executor.Execute(new Runnable(() => Interlocked.Increment(ref count)));
        }

        executor.Shutdown();

        Assert.True(executor.Thread.Join(TimeSpan.FromSeconds(10)));
        Assert.Equal(1000, Volatile.Read(ref count));
        Assert.Throws<RejectedExecutionException>(() => executor.Execute(new Runnable(() => { })));
    }

    [Fact]
    public async Task Work_posted_from_many_threads_while_the_thread_sleeps_all_runs()
    {
        // No spinning: every post races the thread going to sleep, the case the wake-up protocol is for.
        var executor = new CoreThreadExecutor("test", new CoreThreadOptions("relay-core-t", 0, null), _ => { });
        try
        {
            const int PerProducer = 20_000;
            var count = 0;
            var done = new ManualResetEventSlim();
            var producers = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
            {
                for (var i = 0; i < PerProducer; i++)
                {
                    executor.Execute(new Runnable(() =>
                    {
                        if (Interlocked.Increment(ref count) == 4 * PerProducer)
                        {
                            done.Set();
                        }
                    }));
                    if (i % 64 == 0)
                    {
                        Thread.Yield();
                    }
                }
            })).ToArray();

            await Task.WhenAll(producers);
            Assert.True(done.Wait(TimeSpan.FromSeconds(30)), $"ran {Volatile.Read(ref count)} of {4 * PerProducer}");
        }
        finally
        {
            executor.Shutdown();
        }
    }

    [Fact]
    public void An_unpinned_core_thread_started_from_a_pinned_thread_runs_on_the_whole_process_set()
    {
        var process = ThreadAffinity.ProcessCpus();
        IReadOnlyList<int>? seen = null;
        var creator = new Thread(() =>
        {
            Assert.True(ThreadAffinity.TryPinCurrentThread(process[^1], out _));
            var executor = new CoreThreadExecutor(
                "test",
                new CoreThreadOptions("relay-core-t", 0, () => CoreDispatchers.InitializeCurrentThread("test-unpinned", 0, process[^1], pin: false)),
                _ => { });
            var ran = new ManualResetEventSlim();
            executor.Execute(new Runnable(() =>
            {
                seen = ThreadAffinity.CurrentThreadCpus();
                ran.Set();
            }));
            ran.Wait(TimeSpan.FromSeconds(10));
            executor.Shutdown();
        });
        creator.Start();
        creator.Join();

        Assert.Equal(process, seen);
    }

    [Fact]
    public void Pinning_to_a_cpu_outside_the_allowed_set_fails_with_EINVAL_and_keeps_the_mask()
    {
        IReadOnlyList<int>? before = null;
        IReadOnlyList<int>? after = null;
        var pinned = true;
        var errno = 0;
        var thread = new Thread(() =>
        {
            before = ThreadAffinity.CurrentThreadCpus();
            pinned = ThreadAffinity.TryPinCurrentThread(4000, out errno);
            after = ThreadAffinity.CurrentThreadCpus();
        });
        thread.Start();
        thread.Join();

        Assert.False(pinned);
        Assert.Equal(22, errno);
        Assert.Equal(before, after);
    }

    [Fact]
    public void Current_thread_id_is_the_kernel_tid_listed_under_proc_self_task()
    {
        var tid = ThreadAffinity.CurrentThreadId();

        Assert.True(Directory.Exists($"/proc/self/task/{tid}"));
        var other = RunOnNewThread(ThreadAffinity.CurrentThreadId);
        Assert.NotEqual(tid, other);
        Assert.NotEqual(Environment.ProcessId, other);
    }

    private static int RunOnNewThread(Func<int> f)
    {
        var result = 0;
        var thread = new Thread(() => result = f());
        thread.Start();
        thread.Join();
        return result;
    }

    private sealed class Runnable(Action action) : IRunnable
    {
        public void Run() => action();

        public void Execute() => action();
    }
}
