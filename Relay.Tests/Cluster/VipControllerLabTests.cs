using System.Net;
using Relay.Actors.Cluster;
using Relay.Actors.Configuration;
using Relay.Tests.Native;
using Relay.Tests.Support;
using static Relay.Tests.Cluster.Neighbours;
using Xunit.Abstractions;

namespace Relay.Tests.Cluster;

/// <summary>
/// The VIP controller against the real kernel (root): three network namespaces of this test
/// (a unique prefix, removed in finally) on one bridge: a neighbour <c>b</c> (the bridge's own
/// address) and two would-be owners <c>a1</c> and <c>a2</c>. The controllers run inside
/// a1 and a2 (NetworkNamespace.Run), with no external program. The neighbour learns the VIP
/// at a1's MAC by sending to it; a1 gives the VIP up, a2 adds and announces it, and the
/// neighbour's entry must then hold a2's MAC: without the announcement it keeps a1's for
/// 15-45 s (REACHABLE), far past the wait here. With an egress VIP the controller holds both
/// addresses, on the same device here, and every step applies to both.
/// </summary>
public sealed class VipControllerLabTests
{
    private readonly ITestOutputHelper _out;

    public VipControllerLabTests(ITestOutputHelper output) => _out = output;

    [RootLabFact]
    public Task A_gratuitous_arp_moves_a_warm_ipv4_neighbour_entry_to_the_new_owners_mac() => MovesAsync("198.18.0.10", 24);

    [RootLabFact]
    public Task An_unsolicited_neighbour_advertisement_moves_a_warm_ipv6_neighbour_entry_to_the_new_owners_mac() => MovesAsync("2001:2::10", 64);

    [RootLabFact]
    public Task The_owner_holds_the_vip_and_the_egress_vip_and_its_announcements_move_the_neighbours_entries_for_both() =>
        MovesAsync("198.18.0.10", 24, ("198.18.0.11", 24));

    [RootLabFact]
    public Task An_ipv6_egress_vip_moves_with_an_ipv4_vip() => MovesAsync("198.18.0.10", 24, ("2001:2::11", 64));

    /// <summary>
    /// The VIP <paramref name="address"/> (and the egress VIP, if given) held by a1, given up,
    /// taken by a2: the neighbour's entry for each address moves to a2's MAC only when a2
    /// announces.
    /// </summary>
    private async Task MovesAsync(string address, int prefix, (string Address, int Prefix)? egress = null)
    {
        var addresses = new List<FloatingAddress>
        {
            new(FloatingAddressKind.Service, new VirtualIp(IPAddress.Parse(address), prefix), "eth0"),
        };
        if (egress is { } e)
        {
            addresses.Add(new FloatingAddress(FloatingAddressKind.Egress, new VirtualIp(IPAddress.Parse(e.Address), e.Prefix), "eth0"));
        }

        var lab = NewPrefix();
        try
        {
            await UpAsync(lab);
            using var first = NetworkNamespace.Run(lab + "a1", () => new VipController(addresses));
            using var second = NetworkNamespace.Run(lab + "a2", () => new VipController(addresses));
            var firstMac = await MacAsync(lab + "a1", "eth0");
            var secondMac = await MacAsync(lab + "a2", "eth0");

            Assert.Equal(VipResult.Success, first.Add());
            Assert.Equal(VipResult.Success, first.Add()); // a replace: already there is not an error
            var held = await IpAsync("-n", lab + "a1", "addr", "show", "dev", "eth0");
            Assert.All(addresses, a => Assert.Contains($" {a.Address} ", held));

            // Warm the neighbour's cache: it sends to each address, resolves it and has a1's answer.
            foreach (var a in addresses)
            {
                var ip = a.Address.Address.ToString();
                await SendFromNeighbourAsync(lab, ip);
                var warm = await AwaitAsync(lab + "b", "br0", ip, e => e.State == "REACHABLE", $"a REACHABLE entry after sending to the {a.Name}");
                Assert.Equal(firstMac, warm.Mac);
            }

            Assert.Equal(VipResult.Success, first.Remove());
            Assert.Equal(VipResult.Success, first.Remove()); // not there counts as removed
            var released = await IpAsync("-n", lab + "a1", "addr", "show", "dev", "eth0");
            Assert.All(addresses, a => Assert.DoesNotContain($" {a.Address.Address}/", released));

            Assert.Equal(VipResult.Success, second.Add());
            var taken = (await IpAsync("-n", lab + "a2", "addr", "show", "dev", "eth0")).Split('\n');
            foreach (var a in addresses)
            {
                var added = taken.Single(l => l.Contains($" {a.Address} "));
                Assert.DoesNotContain("tentative", added); // IPv6: usable at once, no duplicate address detection
                // Still a1's MAC: adding the address told the neighbour nothing.
                Assert.Equal(firstMac, (await AwaitAsync(lab + "b", "br0", a.Address.Address.ToString(), _ => true, "the entry")).Mac);
            }

            Assert.Equal(VipResult.Success, second.Announce());
            foreach (var a in addresses)
            {
                var ip = a.Address.Address.ToString();
                var moved = await AwaitAsync(lab + "b", "br0", ip, e => e.Mac == secondMac, $"the entry for the {a.Name} to hold a2's MAC {secondMac}",
                    TimeSpan.FromSeconds(3));
                _out.WriteLine($"{a.Name} {ip}: {firstMac} -> {moved.Mac} ({moved.State}) after one announcement");
            }
        }
        finally
        {
            await DownAsync(lab);
        }
    }

    /// <summary>
    /// A handover's target adds the addresses with a lifetime until its commit, so that a
    /// target dying before it does not keep them: the kernel removes them by itself. Adding
    /// them again without one (the commit) makes them permanent.
    /// </summary>
    [RootLabFact]
    public async Task Addresses_added_with_a_lifetime_expire_by_themselves_unless_added_again_for_good()
    {
        FloatingAddress[] addresses =
        [
            new(FloatingAddressKind.Service, new VirtualIp(IPAddress.Parse("198.18.0.10"), 24), "eth0"),
            new(FloatingAddressKind.Egress, new VirtualIp(IPAddress.Parse("2001:2::11"), 64), "eth0"),
        ];
        var lab = NewPrefix();
        try
        {
            await UpAsync(lab);
            using var controller = NetworkNamespace.Run(lab + "a1", () => new VipController(addresses));
            string Line(string listing, FloatingAddress a) => listing.Split('\n').SkipWhile(l => !l.Contains($" {a.Address} ")).Skip(1).First();

            Assert.Equal(VipResult.Success, controller.Add(TimeSpan.FromSeconds(30)));
            var limited = await IpAsync("-n", lab + "a1", "addr", "show", "dev", "eth0");
            Assert.All(addresses, a => Assert.Matches(@"valid_lft (2\d|30)sec", Line(limited, a)));

            Assert.Equal(VipResult.Success, controller.Add());
            var permanent = await IpAsync("-n", lab + "a1", "addr", "show", "dev", "eth0");
            Assert.All(addresses, a => Assert.Contains("valid_lft forever", Line(permanent, a)));

            // One second to live: gone within a few, with no process touching them.
            Assert.Equal(VipResult.Success, controller.Add(TimeSpan.FromSeconds(1)));
            await Eventually.Holds(async () =>
            {
                var listing = await IpAsync("-n", lab + "a1", "addr", "show", "dev", "eth0");
                return addresses.All(a => !listing.Contains($" {a.Address} "));
            }, "the addresses to expire", TimeSpan.FromSeconds(10));
        }
        finally
        {
            await DownAsync(lab);
        }
    }

    [RootLabFact]
    public async Task A_missing_egress_device_is_one_line_that_names_its_key_and_spares_the_vip()
    {
        var vip = new FloatingAddress(FloatingAddressKind.Service, new VirtualIp(IPAddress.Parse("198.18.0.10"), 24), "eth0");
        var egress = new FloatingAddress(FloatingAddressKind.Egress, new VirtualIp(IPAddress.Parse("198.18.0.11"), 24), "nosuch1");
        var lab = NewPrefix();
        try
        {
            await UpAsync(lab);
            using var controller = NetworkNamespace.Run(lab + "a1", () => new VipController([vip, egress]));

            var add = controller.Add();
            Assert.False(add.Ok);
            Assert.Equal(egress, add.Address);
            Assert.Equal("egress VIP 198.18.0.11/24 on nosuch1: no network device \"nosuch1\" (relay.cluster.egress-vip-device)", add.Problem);
            Assert.Contains(" 198.18.0.10/24 ", await IpAsync("-n", lab + "a1", "addr", "show", "dev", "eth0"));

            // Removing and announcing try every address: the VIP goes (and is announced) although the egress VIP cannot.
            foreach (var result in new[] { controller.Announce(), controller.Remove() })
            {
                Assert.False(result.Ok);
                Assert.Equal(egress, result.Address);
                Assert.Equal("egress VIP 198.18.0.11/24 on nosuch1: no network device \"nosuch1\" (relay.cluster.egress-vip-device)", result.Problem);
            }

            Assert.DoesNotContain(" 198.18.0.10/", await IpAsync("-n", lab + "a1", "addr", "show", "dev", "eth0"));
            Assert.Equal(VipResult.Success, controller.Remove(vip));
        }
        finally
        {
            await DownAsync(lab);
        }
    }

    [RootLabFact]
    public async Task A_missing_device_or_capability_is_one_line_that_names_it()
    {
        var vip = new VirtualIp(IPAddress.Parse("198.18.0.10"), 24);
        var lab = NewPrefix();
        try
        {
            await UpAsync(lab);
            using var nowhere = NetworkNamespace.Run(lab + "a1", () => new VipController(vip, "nosuch0"));
            foreach (var result in new[] { nowhere.Add(), nowhere.Remove(), nowhere.Announce() })
            {
                Assert.False(result.Ok);
                Assert.Equal("no network device \"nosuch0\" (relay.cluster.vip-device)", result.Problem);
            }

            // Capabilities are per thread: this thread has root's, minus the two the VIP needs.
            var (open, add) = NetworkNamespace.Run(lab + "a1", () =>
            {
                using var controller = new VipController(vip, "eth0");
                return (controller.Open(), controller.Add());
            }, Capability.CAP_NET_ADMIN, Capability.CAP_NET_RAW);
            _out.WriteLine(open.Problem);
            _out.WriteLine(add.Problem);
            Assert.False(open.Ok);
            Assert.Contains("cannot open a packet socket to send a gratuitous ARP: Operation not permitted: the relay needs CAP_NET_RAW", open.Problem);
            Assert.False(add.Ok);
            Assert.StartsWith("Operation not permitted: the relay needs CAP_NET_ADMIN", add.Problem);
            Assert.DoesNotContain('\n', open.Problem + add.Problem);
        }
        finally
        {
            await DownAsync(lab);
        }
    }

    private static string NewPrefix() => $"rvc{Environment.ProcessId % 100000}x{Random.Shared.Next(1000, 9999)}-";

    /// <summary>b holds br0 (198.18.0.1/24, 2001:2::1/64) with a veth port to each of a1 (.2, ::2) and a2 (.3, ::3).</summary>
    private static async Task UpAsync(string lab)
    {
        foreach (var ns in new[] { "b", "a1", "a2" })
        {
            await IpAsync("netns", "add", lab + ns);
            await IpAsync("-n", lab + ns, "link", "set", "lo", "up");
        }

        await IpAsync("-n", lab + "b", "link", "add", "br0", "type", "bridge");
        await IpAsync("-n", lab + "b", "addr", "add", "198.18.0.1/24", "dev", "br0");
        await IpAsync("-n", lab + "b", "addr", "add", "2001:2::1/64", "dev", "br0", "nodad");
        await IpAsync("-n", lab + "b", "link", "set", "br0", "up");
        var host = 2;
        foreach (var owner in new[] { "a1", "a2" })
        {
            await IpAsync("-n", lab + "b", "link", "add", "p" + owner, "type", "veth", "peer", "name", "eth0", "netns", lab + owner);
            await IpAsync("-n", lab + "b", "link", "set", "p" + owner, "master", "br0", "up");
            await IpAsync("-n", lab + owner, "addr", "add", $"198.18.0.{host}/24", "dev", "eth0");
            await IpAsync("-n", lab + owner, "addr", "add", $"2001:2::{host}/64", "dev", "eth0", "nodad");
            await IpAsync("-n", lab + owner, "link", "set", "eth0", "up");
            host++;
        }
    }

    /// <summary>One UDP datagram from b to the VIP: b resolves the VIP's MAC to send it.</summary>
    private static async Task SendFromNeighbourAsync(string lab, string address)
    {
        var run = await ExternalProcess.RunAsync("ip", ["netns", "exec", lab + "b", "python3", "-c",
            "import socket,sys;a=sys.argv[1];s=socket.socket(socket.AF_INET6 if ':' in a else socket.AF_INET,socket.SOCK_DGRAM);s.sendto(b'x',(a,9))",
            address], null, TimeSpan.FromSeconds(30));
        Assert.True(run.Exit == 0, run.Output);
    }

    private static async Task DownAsync(string lab)
    {
        foreach (var ns in new[] { "b", "a1", "a2" })
        {
            await ExternalProcess.RunAsync("ip", ["netns", "del", lab + ns], null, TimeSpan.FromSeconds(30));
        }
    }
}
