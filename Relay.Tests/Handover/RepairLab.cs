using System.Net;
using System.Text.RegularExpressions;
using Relay.Actors.Handover;
using Relay.Tests.Support;
using static Relay.Tests.Cluster.Neighbours;

namespace Relay.Tests.Handover;

/// <summary>
/// Network namespaces for the TCP_REPAIR tests (root), with a unique prefix and removed on
/// dispose. Two layouts:
/// <list type="bullet">
/// <item><see cref="OneNodeAsync"/>: one namespace, both ends on its loopback (the peer at
/// <see cref="PeerV4"/>, the socket under test at <see cref="AddressV4"/>).</item>
/// <item><see cref="TwoNodesAsync"/>: a peer namespace holding bridge br0 (<see cref="PeerV4"/>,
/// <see cref="PeerV6"/>) with a veth port to each of n1 and n2; the address under test starts on n1.</item>
/// </list>
/// Each node namespace has table <c>inet rhlab</c>: the 4-tuple guard (sets frz4/frz6 dropped
/// on input and output, as the prototype's NFT_INIT) and counters of RST segments seen on
/// input and output before the guard (priority -300), so a reset is counted even if dropped.
/// </summary>
internal sealed class RepairLab : IAsyncDisposable
{
    public static readonly IPAddress PeerV4 = IPAddress.Parse("198.18.6.1");
    public static readonly IPAddress PeerV6 = IPAddress.Parse("2001:2::6:1");
    public static readonly IPAddress AddressV4 = IPAddress.Parse("198.18.6.10");
    public static readonly IPAddress AddressV6 = IPAddress.Parse("2001:2::6:10");

    private const string Table = """
        table inet rhlab {
          counter rst_in { }
          counter rst_out { }
          counter dropped { }
          set frz4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; }
          set frz6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; }
          chain watch_in { type filter hook input priority -300; policy accept;
            tcp flags & rst == rst counter name "rst_in"
          }
          chain watch_out { type filter hook output priority -300; policy accept;
            tcp flags & rst == rst counter name "rst_out"
          }
          chain guard_in { type filter hook input priority -200; policy accept;
            ip saddr . tcp sport . ip daddr . tcp dport @frz4 counter name "dropped" drop
            ip6 saddr . tcp sport . ip6 daddr . tcp dport @frz6 counter name "dropped" drop
          }
          chain guard_out { type filter hook output priority -200; policy accept;
            ip saddr . tcp sport . ip daddr . tcp dport @frz4 counter name "dropped" drop
            ip6 saddr . tcp sport . ip6 daddr . tcp dport @frz6 counter name "dropped" drop
          }
        }
        """;

    private readonly string _prefix;
    private readonly List<string> _namespaces = [];

    private RepairLab(string prefix) => _prefix = prefix;

    /// <summary>The peer's namespace.</summary>
    public string Peer => _prefix + (IsOneNode ? "a" : "p");

    /// <summary>The namespace the socket under test starts in.</summary>
    public string Old => _prefix + (IsOneNode ? "a" : "n1");

    /// <summary>The namespace it is restored in.</summary>
    public string New => _prefix + (IsOneNode ? "a" : "n2");

    public bool IsOneNode { get; private init; }

    public static async Task<RepairLab> OneNodeAsync()
    {
        var lab = new RepairLab(NewPrefix()) { IsOneNode = true };
        try
        {
            await lab.AddNamespaceAsync("a");
            foreach (var address in new[] { $"{PeerV4}/32", $"{AddressV4}/32", $"{PeerV6}/128", $"{AddressV6}/128" })
            {
                await IpAsync("-n", lab.Old, "addr", "add", address, "dev", "lo");
            }

            await lab.NftAsync(lab.Old, Table);
            return lab;
        }
        catch
        {
            await lab.DisposeAsync();
            throw;
        }
    }

    public static async Task<RepairLab> TwoNodesAsync()
    {
        var lab = new RepairLab(NewPrefix());
        try
        {
            foreach (var ns in new[] { "p", "n1", "n2" })
            {
                await lab.AddNamespaceAsync(ns);
            }

            await IpAsync("-n", lab.Peer, "link", "add", "br0", "type", "bridge");
            await IpAsync("-n", lab.Peer, "addr", "add", $"{PeerV4}/24", "dev", "br0");
            await IpAsync("-n", lab.Peer, "addr", "add", $"{PeerV6}/64", "dev", "br0", "nodad");
            await IpAsync("-n", lab.Peer, "link", "set", "br0", "up");
            var host = 2;
            foreach (var node in new[] { "n1", "n2" })
            {
                await IpAsync("-n", lab.Peer, "link", "add", "p" + node, "type", "veth", "peer", "name", "eth0", "netns", lab._prefix + node);
                await IpAsync("-n", lab.Peer, "link", "set", "p" + node, "master", "br0", "up");
                await IpAsync("-n", lab._prefix + node, "addr", "add", $"198.18.6.{host}/24", "dev", "eth0");
                await IpAsync("-n", lab._prefix + node, "addr", "add", $"2001:2::6:{host}/64", "dev", "eth0", "nodad");
                await IpAsync("-n", lab._prefix + node, "link", "set", "eth0", "up");
                await lab.NftAsync(lab._prefix + node, Table);
                host++;
            }

            await lab.NftAsync(lab.Peer, Table);
            await IpAsync("-n", lab.Old, "addr", "add", $"{AddressV4}/24", "dev", "eth0");
            await IpAsync("-n", lab.Old, "addr", "add", $"{AddressV6}/64", "dev", "eth0", "nodad");
            return lab;
        }
        catch
        {
            await lab.DisposeAsync();
            throw;
        }
    }

    /// <summary>Moves the address under test from <see cref="Old"/> to <see cref="New"/>, and makes the peer forget where it was (the relay announces it instead).</summary>
    public async Task MoveAddressAsync(IPAddress address)
    {
        if (IsOneNode)
        {
            return;
        }

        var v6 = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
        await IpAsync("-n", Old, "addr", "del", $"{address}/{(v6 ? 64 : 24)}", "dev", "eth0");
        if (v6)
        {
            await IpAsync("-n", New, "addr", "add", $"{address}/64", "dev", "eth0", "nodad");
        }
        else
        {
            await IpAsync("-n", New, "addr", "add", $"{address}/24", "dev", "eth0");
        }

        await IpAsync("-n", Peer, "neigh", "flush", "to", address.ToString());
    }

    /// <summary>Adds (or deletes) the 4-tuples of <paramref name="socket"/> in the given directions to the guard of namespace <paramref name="ns"/>.</summary>
    public Task GuardAsync(string ns, bool add, IPEndPoint local, IPEndPoint remote, bool inbound = true, bool outbound = true)
    {
        local = Unmapped(local);
        remote = Unmapped(remote);
        var set = local.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? "frz4" : "frz6";
        var elements = new List<string>();
        if (inbound)
        {
            elements.Add($"{remote.Address} . {remote.Port} . {local.Address} . {local.Port}");
        }

        if (outbound)
        {
            elements.Add($"{local.Address} . {local.Port} . {remote.Address} . {remote.Port}");
        }

        return NftArgsAsync(ns, add ? "add" : "delete", "element", "inet", "rhlab", set, "{ " + string.Join(", ", elements) + " }");
    }

    /// <summary>RST segments counted in <paramref name="ns"/> (input + output).</summary>
    public async Task<long> ResetsAsync(string ns) => await CounterAsync(ns, "rst_in") + await CounterAsync(ns, "rst_out");

    public async Task<long> CounterAsync(string ns, string counter)
    {
        var run = await ExternalProcess.RunAsync("ip", ["netns", "exec", ns, "nft", "list", "counter", "inet", "rhlab", counter], null, TimeSpan.FromSeconds(20));
        Assert.True(run.Exit == 0, run.Output);
        var match = Regex.Match(run.Stdout, @"packets (\d+)");
        Assert.True(match.Success, run.Stdout);
        return long.Parse(match.Groups[1].Value);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var ns in _namespaces)
        {
            await ExternalProcess.RunAsync("ip", ["netns", "del", ns], null, TimeSpan.FromSeconds(30));
        }
    }

    public static IPEndPoint Unmapped(IPEndPoint endpoint) =>
        endpoint.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(endpoint.Address.MapToIPv4(), endpoint.Port) : endpoint;

    private static string NewPrefix() => $"rh-rep-{Environment.ProcessId}-{Random.Shared.Next(1000, 9999)}-";

    private async Task AddNamespaceAsync(string name)
    {
        await IpAsync("netns", "add", _prefix + name);
        _namespaces.Add(_prefix + name);
        await IpAsync("-n", _prefix + name, "link", "set", "lo", "up");
    }

    private async Task NftAsync(string ns, string script)
    {
        var file = Path.Combine(Path.GetTempPath(), $"{_prefix}{Guid.NewGuid():N}.nft");
        await File.WriteAllTextAsync(file, script + "\n");
        try
        {
            await NftArgsAsync(ns, "-f", file);
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static async Task NftArgsAsync(string ns, params string[] args)
    {
        var run = await ExternalProcess.RunAsync("ip", ["netns", "exec", ns, "nft", .. args], null, TimeSpan.FromSeconds(20));
        Assert.True(run.Exit == 0, $"nft {string.Join(' ', args)} in {ns}: {run.Output}");
    }
}
