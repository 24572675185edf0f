using System.Runtime.InteropServices;

namespace Relay.Actors.Dispatch.Internal;

/// <summary>
/// INTERNAL API. The few libc calls the dispatchers need. Errors come back through
/// <see cref="Marshal.GetLastPInvokeError"/> (errno), never as exceptions.
/// </summary>
internal static class LibC
{
    public const int EINVAL = 22;

    /// <summary>pid 0 means the calling thread (a Linux task), not the whole process.</summary>
    [DllImport("libc", SetLastError = true)]
    public static extern int sched_getaffinity(int pid, nuint cpusetsize, ulong[] mask);

    [DllImport("libc", SetLastError = true)]
    public static extern int sched_setaffinity(int pid, nuint cpusetsize, ulong[] mask);

    [DllImport("libc", SetLastError = true)]
    public static extern long syscall(long number);

    /// <summary>__NR_gettid from the kernel's syscall tables; it differs per architecture.</summary>
    public static long? GettidSyscallNumber => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 186,
        Architecture.Arm64 => 178,
        _ => null,
    };
}
