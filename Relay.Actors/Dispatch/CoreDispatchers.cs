using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Akka.Configuration;
using Relay.Actors.Configuration;
using Relay.Actors.Dispatch.Internal;

namespace Relay.Actors.Dispatch;

/// <summary>
/// The per-core dispatchers: N single-thread dispatchers, dispatcher <c>i</c> running on one
/// dedicated thread named <c>relay-core-i</c> that is pinned with sched_setaffinity to the
/// i-th CPU of the process's allowed set (wrapping round when N exceeds the set).
/// </summary>
/// <remarks>
/// Akka.NET has no affinity option, so each dispatcher names
/// <see cref="CoreThreadExecutorConfigurator"/> as its <c>executor</c>. A pin that fails
/// (EINVAL for an offline CPU, EPERM under a restrictive policy) leaves the dispatcher
/// working unpinned; <see cref="PinFailures"/> and <see cref="ThreadStatuses"/> let the host
/// log that once.
/// </remarks>
public static class CoreDispatchers
{
    public const string ConfigRoot = "relay-core-dispatchers";

    /// <summary>
    /// How many times (about 0.7 µs apart) a core thread looks at its queue before it blocks
    /// in epoll_wait. Off by default: socket readiness now arrives through the thread's own
    /// epoll, and on a small appliance the spinning took CPU from the kernel's network stack
    /// (perf under a keep-alive load). The per-dispatcher key <c>spin-iterations</c> remains.
    /// </summary>
    internal const int DefaultSpinIterations = 0;

    private static readonly ConcurrentDictionary<string, CoreThreadStatus> s_statuses = new();
    private static int s_pinFailures;

    // The ids of the first cores, made once: every circuit names its core's dispatcher.
    private static readonly string[] s_ids = Enumerable.Range(0, 64).Select(core => $"{ConfigRoot}.core-{core}").ToArray();

    public static string IdFor(int core) => (uint)core < (uint)s_ids.Length ? s_ids[core] : $"{ConfigRoot}.core-{core}";

    /// <summary>The OS-visible name of core <paramref name="core"/>'s thread (under 16 bytes, as Linux requires).</summary>
    public static string ThreadNameFor(int core) => $"relay-core-{core}";

    /// <summary>
    /// The HOCON of <paramref name="settings"/>.Cores dispatchers, to be merged into the actor
    /// system's config. Reads the process's CPU set now, so the CPU of each dispatcher shows in
    /// the effective config.
    /// </summary>
    public static Config CreateConfig(DispatcherSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentOutOfRangeException.ThrowIfLessThan(settings.Cores, 1, nameof(settings) + "." + nameof(settings.Cores));
        ArgumentOutOfRangeException.ThrowIfLessThan(settings.Throughput, 1, nameof(settings) + "." + nameof(settings.Throughput));

        var cpus = ThreadAffinity.ProcessCpus();
        var executor = typeof(CoreThreadExecutorConfigurator).FullName + ", " + typeof(CoreThreadExecutorConfigurator).Assembly.GetName().Name;
        var mailbox = typeof(CompactMailbox).FullName + ", " + typeof(CompactMailbox).Assembly.GetName().Name;
        var hocon = new StringBuilder();
        hocon.Append(ConfigRoot).AppendLine(" {");
        for (var core = 0; core < settings.Cores; core++)
        {
            hocon.Append(CultureInfo.InvariantCulture, $$"""
                  core-{{core}} {
                    type = Dispatcher
                    executor = "{{executor}}"
                    mailbox-type = "{{mailbox}}"
                    throughput = {{settings.Throughput}}
                    core = {{core}}
                    cpu = {{cpus[core % cpus.Count]}}
                    pin = {{(settings.Pin ? "on" : "off")}}
                    spin-iterations = {{DefaultSpinIterations}}
                  }

                """);
        }

        hocon.AppendLine("}");
        return ConfigurationFactory.ParseString(hocon.ToString());
    }

    /// <summary>How many core threads failed to pin since the process started.</summary>
    public static int PinFailures => Volatile.Read(ref s_pinFailures);

    /// <summary>The latest thread of each core dispatcher that has started, ordered by core.</summary>
    public static IReadOnlyList<CoreThreadStatus> ThreadStatuses() =>
        s_statuses.Values.OrderBy(status => status.Core).ThenBy(status => status.DispatcherId, StringComparer.Ordinal).ToArray();

    /// <summary>
    /// INTERNAL API. Runs first on every new core thread. Without a pin the thread is set to
    /// the process's CPUs. Linux gives a new thread its creator's mask, and Akka creates an
    /// executor's thread lazily on whichever thread posts to it first, often another pinned
    /// core thread. CoreCLR's PAL already resets new threads to the mask the process started
    /// with (measured on .NET 10: thread-pool, socket-engine and our own threads created from a
    /// pinned thread all had the full mask); this makes it explicit and follows later taskset
    /// changes.
    /// </summary>
    internal static void InitializeCurrentThread(string dispatcherId, int core, int cpu, bool pin)
    {
        var pinned = false;
        var errno = 0;
        if (pin)
        {
            pinned = ThreadAffinity.TryPinCurrentThread(cpu, out errno);
            if (!pinned)
            {
                Interlocked.Increment(ref s_pinFailures);
            }
        }

        if (!pinned)
        {
            ThreadAffinity.TrySetCurrentThreadCpus(ThreadAffinity.ProcessCpus(), out _);
        }

        s_statuses[dispatcherId] = new CoreThreadStatus(
            dispatcherId,
            core,
            cpu,
            Thread.CurrentThread.Name ?? ThreadNameFor(core),
            ThreadAffinity.CurrentThreadId(),
            pin,
            pinned,
            errno,
            ThreadAffinity.CurrentThreadCpus());
    }
}

/// <summary>
/// What happened when a core dispatcher's thread started: which OS thread it is, whether the
/// pin was asked for and held, and the affinity mask the thread ended up with.
/// </summary>
/// <param name="PinErrno">The errno of a failed pin (22 EINVAL, 1 EPERM), 0 otherwise.</param>
public sealed record CoreThreadStatus(
    string DispatcherId,
    int Core,
    int Cpu,
    string ThreadName,
    int OsThreadId,
    bool PinRequested,
    bool Pinned,
    int PinErrno,
    IReadOnlyList<int> Cpus);
