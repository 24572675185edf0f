using Relay.Tests.Support;
using static Relay.Tests.Support.ExternalProcess;

namespace Relay.Tests.Cluster;

/// <summary>
/// Running ops/cluster/cluster.sh (and the commands around it) for the cluster lab tests:
/// every run bounded in time, the relay taken from the test output, logs read while the
/// nodes still write them.
/// </summary>
internal static class ClusterLab
{
    /// <summary>The lines of log <paramref name="path"/> that match, once there are <paramref name="count"/>; fails after 60 s with the whole log.</summary>
    public static async Task<List<string>> WaitForLogAsync(string path, Func<string, bool> match, int count)
    {
        var lines = new List<string>();
        await Eventually.Holds(
            () => (lines = File.Exists(path) ? ReadShared(path).Where(match).ToList() : []).Count >= count,
            $"{count} matching line(s) in {path}", TimeSpan.FromSeconds(60),
            state: () => $"it has:\n{(File.Exists(path) ? string.Join('\n', ReadShared(path)) : "(none)")}", every: TimeSpan.FromMilliseconds(100));
        return lines;
    }

    private static string[] ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd().Split('\n');
    }

    /// <summary><paramref name="env"/> and RELAY: the relay runs from this test's own output (relay.dll is copied next to the tests).</summary>
    public static Dictionary<string, string> WithRelay(IDictionary<string, string>? env)
    {
        var all = new Dictionary<string, string> { ["RELAY"] = $"{DotnetHost()} {Path.Combine(AppContext.BaseDirectory, "relay.dll")}" };
        foreach (var (k, v) in env ?? new Dictionary<string, string>())
        {
            all[k] = v;
        }

        return all;
    }

    /// <summary>Runs <paramref name="file"/> for up to 120 s (running out of time throws); its stdout.</summary>
    public static async Task<string> RunAsync(string file, string[] args, IDictionary<string, string>? env, bool check = true)
    {
        var timeout = TimeSpan.FromSeconds(120);
        var run = await ExternalProcess.RunAsync(file, args, WithRelay(env), timeout);
        if (run.TimedOut)
        {
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish within {timeout.TotalSeconds:N0} s:\n{run.Output}");
        }

        if (check)
        {
            Assert.True(run.Exit == 0, $"{file} {string.Join(' ', args)} failed ({run.Exit}):\n{run.Output}");
        }

        return run.Stdout;
    }
}
