using System.Text.Json;
using Relay.Tests.Support;

namespace Relay.Tests.Cluster;

/// <summary>
/// What a namespace's kernel knows about its neighbours, read with <c>ip -j</c> (the tests may
/// use ip; only the relay must not): a device's MAC, and the neighbour entry (MAC and NUD
/// state) for an address, awaited until it matches.
/// </summary>
internal static class Neighbours
{
    internal sealed record Entry(string? Mac, string State);

    /// <summary>The MAC of <paramref name="device"/> in namespace <paramref name="ns"/>.</summary>
    public static async Task<string> MacAsync(string ns, string device)
    {
        using var link = JsonDocument.Parse(await IpAsync("-j", "-n", ns, "link", "show", "dev", device));
        return link.RootElement[0].GetProperty("address").GetString()!;
    }

    /// <summary>
    /// <paramref name="ns"/>'s entry for <paramref name="address"/> on <paramref name="device"/> once
    /// <paramref name="match"/> holds, polled every 50 ms; fails with <paramref name="what"/> and the
    /// last entry seen after <paramref name="within"/> (5 s).
    /// </summary>
    public static async Task<Entry> AwaitAsync(string ns, string device, string address, Func<Entry, bool> match, string what, TimeSpan? within = null)
    {
        Entry? last = null;
        await Eventually.Holds(async () =>
            {
                using var neigh = JsonDocument.Parse(await IpAsync("-j", "-n", ns, "neigh", "show", "to", address, "dev", device));
                if (neigh.RootElement.GetArrayLength() == 0)
                {
                    return false;
                }

                var entry = neigh.RootElement[0];
                last = new Entry(
                    entry.TryGetProperty("lladdr", out var mac) ? mac.GetString() : null,
                    entry.TryGetProperty("state", out var state) ? string.Join(',', state.EnumerateArray().Select(s => s.GetString())) : "");
                return match(last);
            },
            what, within ?? TimeSpan.FromSeconds(5), state: () => $"{ns}'s entry for {address} is {last?.ToString() ?? "absent"}",
            every: TimeSpan.FromMilliseconds(50));
        return last!;
    }

    /// <summary>Runs ip with <paramref name="args"/>; its stdout, or a failed assertion with its output.</summary>
    public static async Task<string> IpAsync(params string[] args)
    {
        var run = await ExternalProcess.RunAsync("ip", args, null, TimeSpan.FromSeconds(30));
        Assert.True(run.Exit == 0, $"ip {string.Join(' ', args)} failed ({run.Exit}): {run.Output}");
        return run.Stdout;
    }
}
