using System.Runtime.CompilerServices;

namespace Relay.Tests.Support;

/// <summary>
/// Raises the thread pool's floor for the test process. xunit runs test classes in parallel,
/// and some helpers wait synchronously on pool threads (LogCapture.WaitForLine blocks until
/// its line is written); on a 2-core machine the pool starts with 2 threads and adds one about every half
/// second, so under a busy loop a test's own ConnectAsync continuation could run 700 ms late
/// and a relay timeout fire before the test saw its connect complete. The relay's data path
/// runs on its own core threads, not the pool, so this changes the tests' timing only.
/// </summary>
internal static class ThreadPoolFloor
{
    [ModuleInitializer]
    internal static void Raise()
    {
        ThreadPool.GetMinThreads(out var workers, out var io);
        ThreadPool.SetMinThreads(Math.Max(workers, 32), Math.Max(io, 32));
    }
}
