using System.Globalization;
using System.Runtime.InteropServices;
using Relay.Actors.Native;

namespace Relay.Actors.Dispatch;

/// <summary>
/// Linux CPU affinity of the process and of the calling thread, for the per-core dispatchers
/// and for diagnostics. A Linux thread is a task: <c>sched_*affinity(0, ...)</c> acts on the
/// calling thread only, and a thread created later inherits its creator's mask.
/// </summary>
public static unsafe class ThreadAffinity
{
    // cpu_set_t is 1024 bits in glibc. Larger machines need a larger mask: the kernel answers
    // EINVAL while the mask is smaller than its nr_cpu_ids, so grow until it fits.
    private const int InitialMaskWords = 1024 / 64;
    private const int MaxMaskWords = 65536 / 64;

    /// <summary>
    /// The CPUs the process may run on (the mask of its main thread: taskset, cgroup cpusets
    /// and container limits all show here), ascending.
    /// </summary>
    public static IReadOnlyList<int> ProcessCpus() => GetAffinity(Environment.ProcessId);

    /// <summary>The CPUs the calling thread may run on, ascending.</summary>
    public static IReadOnlyList<int> CurrentThreadCpus() => GetAffinity(0);

    /// <summary>
    /// Pins the calling thread to one CPU. Returns false with the errno on failure (EINVAL for a
    /// CPU outside the allowed set or offline, EPERM when a policy forbids it); the thread keeps
    /// its previous mask then. Logs nothing: the caller decides how loud a failure is.
    /// </summary>
    public static bool TryPinCurrentThread(int cpu, out int errno)
    {
        if (cpu < 0 || cpu >= MaxMaskWords * 64)
        {
            errno = Errno.EINVAL;
            return false;
        }

        var mask = new ulong[Math.Max(InitialMaskWords, (cpu / 64) + 1)];
        mask[cpu / 64] = 1UL << (cpu % 64);
        return TrySetCurrentThread(mask, out errno);
    }

    /// <summary>
    /// Gives the calling thread the given CPUs (for example the whole process set, to undo a
    /// mask inherited from a pinned creator). Returns false with the errno on failure.
    /// </summary>
    public static bool TrySetCurrentThreadCpus(IReadOnlyCollection<int> cpus, out int errno)
    {
        ArgumentNullException.ThrowIfNull(cpus);
        if (cpus.Count == 0 || cpus.Any(cpu => cpu < 0 || cpu >= MaxMaskWords * 64))
        {
            errno = Errno.EINVAL;
            return false;
        }

        var mask = new ulong[Math.Max(InitialMaskWords, (cpus.Max() / 64) + 1)];
        foreach (var cpu in cpus)
        {
            mask[cpu / 64] |= 1UL << (cpu % 64);
        }

        return TrySetCurrentThread(mask, out errno);
    }

    /// <summary>
    /// The kernel's id of the calling thread (gettid), as shown in /proc/PID/task and by
    /// top -H; unlike <see cref="Environment.CurrentManagedThreadId"/> it names the OS thread.
    /// </summary>
    public static int CurrentThreadId()
    {
        if (Unistd.GettidSyscallNumber is { } number)
        {
            var tid = Unistd.Syscall(number);
            if (tid > 0)
            {
                return (int)tid;
            }
        }

        // Other architectures: the first field of /proc/thread-self/stat is the tid.
        var stat = File.ReadAllText("/proc/thread-self/stat");
        return int.Parse(stat.AsSpan(0, stat.IndexOf(' ')), NumberStyles.None, CultureInfo.InvariantCulture);
    }

    private static bool TrySetCurrentThread(ulong[] mask, out int errno)
    {
        int result;
        fixed (ulong* words = mask)
        {
            result = Sched.SetAffinity(0, (nuint)(mask.Length * sizeof(ulong)), words);
        }

        if (result == 0)
        {
            errno = 0;
            return true;
        }

        errno = Marshal.GetLastPInvokeError();
        return false;
    }

    private static int[] GetAffinity(int pid)
    {
        for (var words = InitialMaskWords; words <= MaxMaskWords; words *= 2)
        {
            var mask = new ulong[words];
            int result;
            fixed (ulong* p = mask)
            {
                result = Sched.GetAffinity(pid, (nuint)(words * sizeof(ulong)), p);
            }

            if (result == 0)
            {
                return Decode(mask);
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno != Errno.EINVAL)
            {
                throw new InvalidOperationException($"sched_getaffinity({pid}) failed with errno {errno}.");
            }
        }

        throw new InvalidOperationException($"sched_getaffinity({pid}) needs a mask larger than {MaxMaskWords * 64} CPUs.");
    }

    private static int[] Decode(ulong[] mask)
    {
        var cpus = new List<int>();
        for (var word = 0; word < mask.Length; word++)
        {
            var bits = mask[word];
            while (bits != 0)
            {
                var bit = System.Numerics.BitOperations.TrailingZeroCount(bits);
                cpus.Add((word * 64) + bit);
                bits &= bits - 1;
            }
        }

        return cpus.ToArray();
    }
}
