using System.Diagnostics;
using System.Text;

namespace Relay.Tests.Support;

/// <summary>
/// External processes for the root-only lab tests (ops/lab/lab.sh, ops/cluster/cluster.sh, the
/// built relay and python peers in network namespaces): run one to completion and capture its
/// output, or start a long-running one and read from it; stop it with its tree. Every wait is bounded.
/// </summary>
internal static class ExternalProcess
{
    /// <summary>How a process run to completion ended: Exit is -1 when it ran out of time (and was killed).</summary>
    internal sealed record RunResult(int Exit, string Stdout, string Stderr, bool TimedOut = false)
    {
        public string Output => Stdout + Stderr;
    }

    /// <summary>
    /// Runs <paramref name="file"/> to completion with its stdin closed, capturing stdout and stderr.
    /// Past <paramref name="timeout"/> it is killed with its tree, and the result says so.
    /// </summary>
    public static async Task<RunResult> RunAsync(
        string file, IEnumerable<string> args, IDictionary<string, string>? env, TimeSpan timeout)
    {
        using var p = Start(file, args, env);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
            return new RunResult(-1, await stdout, $"timed out after {timeout.TotalSeconds:N0} s\n{await stderr}", TimedOut: true);
        }

        return new RunResult(p.ExitCode, await stdout, await stderr);
    }

    /// <summary>Starts <paramref name="file"/> with stdin, stdout and stderr redirected; stop it with <see cref="Stop"/>.</summary>
    public static Process Start(string file, IEnumerable<string> args, IDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (k, v) in env ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }

        return Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
    }

    /// <summary>Appends every line <paramref name="p"/> writes, stdout and stderr, to <paramref name="log"/> (lock it to read).</summary>
    public static void CaptureLines(Process p, StringBuilder log)
    {
        p.OutputDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
    }

    /// <summary>Kills <paramref name="p"/> with its tree if it still runs, waits up to 10 s for it, and disposes it.</summary>
    public static void Stop(Process? p)
    {
        if (p is null)
        {
            return;
        }

        try
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
            // already gone
        }

        p.Dispose();
    }

    /// <summary>The next stdout line of <paramref name="p"/>, trimmed; null at the end of its output, a note if none comes in time.</summary>
    public static async Task<string?> ReadLineAsync(Process p, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            return (await p.StandardOutput.ReadLineAsync(cts.Token))?.Trim();
        }
        catch (OperationCanceledException)
        {
            return $"(no line within {timeout.TotalSeconds:N0} s)";
        }
    }

    /// <summary>
    /// Polls `ss` in network namespace <paramref name="ns"/> until something listens on TCP
    /// <paramref name="port"/>; fails, with <paramref name="log"/>, once <paramref name="process"/>
    /// has exited or <paramref name="timeout"/> has passed.
    /// </summary>
    public static async Task AwaitListeningAsync(string ns, int port, Process process, TimeSpan timeout, Func<string> log)
    {
        var listening = false;
        var what = $"something to listen on TCP :{port} in {ns}";
        await Eventually.Holds(async () =>
            {
                var ss = await RunAsync("ip", ["netns", "exec", ns, "ss", "-Hltn", $"sport = :{port}"], null, TimeSpan.FromSeconds(10));
                listening = ss.Exit == 0 && ss.Stdout.Trim().Length > 0;
                return listening || process.HasExited;
            },
            what, timeout, state: () => $"(exited: {process.HasExited}):\n{log()}", every: TimeSpan.FromMilliseconds(200));
        Assert.True(listening, $"{what}, but the process exited:\n{log()}");
    }

    /// <summary>The dotnet host running the tests (DOTNET_HOST_PATH), else `dotnet` on the PATH.</summary>
    public static string DotnetHost()
    {
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        return !string.IsNullOrEmpty(host) && File.Exists(host) ? host : "dotnet";
    }

    /// <summary>
    /// <paramref name="relativePath"/> (with '/', e.g. "ops/lab/lab.sh") in the nearest folder at or
    /// above the test output that has it: the repository's file.
    /// </summary>
    public static string FindInRepo(string relativePath)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine([dir.FullName, .. relativePath.Split('/')]);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException($"{relativePath} not found above {AppContext.BaseDirectory}");
    }
}
