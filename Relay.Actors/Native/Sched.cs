using System.Runtime.InteropServices;

namespace Relay.Actors.Native;

/// <summary>
/// INTERNAL API. &lt;sched.h&gt;: CPU affinity. A <c>mask</c> is a cpu_set_t of
/// <c>cpusetsize</c> bytes. Errors come back as -1 with errno in
/// <see cref="Marshal.GetLastPInvokeError"/>.
/// </summary>
internal static unsafe partial class Sched
{
    /// <summary>pid 0 means the calling thread (a Linux task), not the whole process.</summary>
    [LibraryImport("libc", EntryPoint = "sched_getaffinity", SetLastError = true)]
    public static partial int GetAffinity(int pid, nuint cpusetsize, ulong* mask);

    /// <summary>pid 0 means the calling thread (a Linux task), not the whole process.</summary>
    [LibraryImport("libc", EntryPoint = "sched_setaffinity", SetLastError = true)]
    public static partial int SetAffinity(int pid, nuint cpusetsize, ulong* mask);
}
