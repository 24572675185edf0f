using System.Collections;
using System.Text;
using Relay.Actors.Native;

namespace Relay.Host.Hosting;

/// <summary>
/// Gives the garbage collector a gen0 budget fit for a relay, which the runtime only reads
/// from its environment at start-up: the process re-executes itself once, in place, with
/// <c>DOTNET_GCgen0size</c> set.
/// <para>
/// Why: the runtime sizes gen0 from the CPU's last-level cache. Where it cannot read the
/// cache size (this project's 2-core VMs have no /sys/devices/system/cpu/cpu0/cache, and
/// /proc/cpuinfo says 1024 KB) the budget is a few hundred KB, and every collection stops
/// both core threads. Under <c>Connection: close</c> load, with circuits that allocated about
/// 20 KB each, the relay collected about 30 times a second, mostly gen1: 0.17 s of pauses in
/// 4 s. With a 16 MiB floor: 8 collections a second, none gen1, and 11% less CPU per
/// connection (ops/bench/loopback-cost.sh, B_ENV=DOTNET_GCgen0size=0x1000000, 4 rounds).
/// A circuit allocates about 9 KB now (ops/bench/RESULTS.md), which halves the rate; a
/// budget of a few hundred KB is still spent in a few dozen circuits.
/// Keep-alive traffic allocates next to nothing and is unaffected. The runtime still grows
/// the budget above the floor where its own sizing says so.
/// </para>
/// <para>
/// The re-exec is execve(2) of /proc/self/exe with the same arguments: the same PID, so
/// systemd, signals and anyone waiting on the process see nothing. An operator's own
/// <c>DOTNET_GCgen0size</c> (or <c>COMPlus_</c>) wins, and <c>RELAY_GC_TUNING=off</c> keeps
/// the runtime's default. If execve fails, the relay runs on the runtime's default.
/// </para>
/// </summary>
internal static class GcBudget
{
    public const string Variable = "DOTNET_GCgen0size";
    /// <summary>16 MiB, in the hexadecimal the runtime's GC settings take.</summary>
    public const string Gen0Floor = "0x1000000";
    /// <summary>Set in the re-executed process, so it never re-executes again; also the opt-out (<c>off</c>).</summary>
    public const string Marker = "RELAY_GC_TUNING";

    /// <summary>Returns only if no re-exec was needed or it failed; otherwise the process image is replaced.</summary>
    public static void ApplyByReexecIfNeeded()
    {
        if (!OperatingSystem.IsLinux()
            || Environment.GetEnvironmentVariable(Marker) is not null
            || Environment.GetEnvironmentVariable(Variable) is not null
            || Environment.GetEnvironmentVariable("COMPlus_GCgen0size") is not null)
        {
            return;
        }

        string[] argv;
        try
        {
            // The command line as the kernel started it (the apphost, or dotnet and the dll).
            argv = Encoding.UTF8.GetString(File.ReadAllBytes("/proc/self/cmdline")).TrimEnd('\0').Split('\0');
        }
        catch (IOException)
        {
            return;
        }
        catch (UnauthorizedAccessException)
        {
            return;
        }

        if (argv.Length == 0 || argv[0].Length == 0)
        {
            return;
        }

        var environment = new List<string>();
        foreach (DictionaryEntry variable in Environment.GetEnvironmentVariables())
        {
            environment.Add($"{variable.Key}={variable.Value}");
        }

        environment.Add($"{Variable}={Gen0Floor}");
        environment.Add($"{Marker}=applied");
        Console.Out.Flush();
        Console.Error.Flush();
        RemoveOwnDiagnosticsSocket();
        Unistd.Execve("/proc/self/exe", [.. argv, null], [.. environment, null]);
        // Still here: execve failed (no /proc, a seccomp policy); run with the default budget.
    }

    /// <summary>
    /// The runtime about to be replaced has made its diagnostics socket
    /// ($TMPDIR/dotnet-diagnostic-PID-KEY-socket), and execve leaves the file behind with
    /// nobody listening. dotnet-counters and dotnet-trace take the first socket of the PID
    /// they find, so with the stale one there they could not attach ("connection refused").
    /// The re-executed runtime makes its own.
    /// </summary>
    private static void RemoveOwnDiagnosticsSocket()
    {
        try
        {
            var directory = Environment.GetEnvironmentVariable("TMPDIR") is { Length: > 0 } tmp ? tmp : "/tmp";
            foreach (var socket in Directory.EnumerateFiles(directory, $"dotnet-diagnostic-{Environment.ProcessId}-*-socket"))
            {
                File.Delete(socket);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Diagnostics tools may then need --diagnostic-port; the relay itself is unaffected.
        }
    }
}
