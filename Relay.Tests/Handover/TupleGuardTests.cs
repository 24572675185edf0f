using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Relay.Actors.Handover;
using Relay.Actors.Native;
using Relay.Tests.Native;
using Relay.Tests.Support;
using Xunit.Abstractions;
using static Relay.Tests.Cluster.Neighbours;

namespace Relay.Tests.Handover;

/// <summary>
/// The tuple guard against the real kernel (root), each test in network namespaces of its own
/// (a unique prefix with the process id, removed in finally): the guard is opened inside the
/// "relay" namespace (NetworkNamespace.Run) and talks nf_tables itself; the tests read what it
/// made with <c>nft -j list</c>, and send real TCP segments over a veth pair to a "peer"
/// namespace (relay 198.18.0.1 and 2001:2::1, peer .2 and ::2).
/// </summary>
public sealed class TupleGuardTests
{
    private const string Table = TupleGuard.DefaultTableName;

    // The same ruleset as text, for nft to make in another namespace and compare.
    private const string Ruleset = """
        table inet relay_handover {
          set frz4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags timeout; timeout 60s; }
          set frz6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; flags timeout; timeout 60s; }
          set hold4 { type ipv4_addr; flags timeout; timeout 60s; }
          set hold6 { type ipv6_addr; flags timeout; timeout 60s; }
          chain in  { type filter hook input  priority -200; policy accept;
                      ip saddr . tcp sport . ip daddr . tcp dport @frz4 counter drop
                      ip6 saddr . tcp sport . ip6 daddr . tcp dport @frz6 counter drop; }
          chain out { type filter hook output priority -200; policy accept;
                      ip saddr . tcp sport . ip daddr . tcp dport @frz4 counter drop
                      ip6 saddr . tcp sport . ip6 daddr . tcp dport @frz6 counter drop; }
          chain hold { type filter hook input priority -200; policy accept;
                      tcp flags & (fin|syn|rst|ack) == syn ip daddr @hold4 counter drop
                      tcp flags & (fin|syn|rst|ack) == syn ip6 daddr @hold6 counter drop; }
        }
        """;

    private readonly ITestOutputHelper _out;

    public TupleGuardTests(ITestOutputHelper output) => _out = output;

    [RootLabFact]
    public async Task Open_makes_the_same_table_nft_makes_from_the_ruleset_text()
    {
        await using var lab = await Lab.CreateAsync();
        using var guard = NetworkNamespace.Run(lab.Relay, () => TupleGuard.Open());
        Assert.Equal(Table, guard.TableName);

        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(file, Ruleset);
            var made = await NftAsync(lab.Peer, "-f", file);
            Assert.True(made.Exit == 0, made.Output);
        }
        finally
        {
            File.Delete(file);
        }

        var ours = Listing(await NftOkAsync(lab.Relay, "-j", "list", "table", "inet", Table));
        var nfts = Listing(await NftOkAsync(lab.Peer, "-j", "list", "table", "inet", Table));
        _out.WriteLine(ours);
        Assert.Equal(nfts, ours);
        Assert.Contains("\"right\":\"@frz4\"", ours);
        Assert.Contains("\"right\":\"@frz6\"", ours);
    }

    [RootLabFact]
    public async Task Add_puts_both_directions_of_each_tuple_in_its_familys_set_with_the_timeout()
    {
        await using var lab = await Lab.CreateAsync();
        using var guard = NetworkNamespace.Run(lab.Relay, () => TupleGuard.Open());

        // A tuple twice in one call is one tuple.
        var first = Tuple("198.18.0.1", 443, "198.18.0.2", 40001);
        guard.Add([first, Tuple("198.18.0.1", 443, "198.18.0.3", 40002), first], TimeSpan.FromSeconds(30));
        guard.Add([Tuple("2001:2::1", 443, "2001:2::2", 40003)], TimeSpan.FromSeconds(20));

        var v4 = await ElementsAsync(lab.Relay, "frz4");
        var v6 = await ElementsAsync(lab.Relay, "frz6");
        _out.WriteLine(string.Join("\n", v4.Concat(v6)));
        Assert.Equal(
            ["198.18.0.1 . 443 . 198.18.0.2 . 40001", "198.18.0.1 . 443 . 198.18.0.3 . 40002", "198.18.0.2 . 40001 . 198.18.0.1 . 443", "198.18.0.3 . 40002 . 198.18.0.1 . 443"],
            v4.Select(e => e.Key).Order());
        Assert.Equal(["2001:2::1 . 443 . 2001:2::2 . 40003", "2001:2::2 . 40003 . 2001:2::1 . 443"], v6.Select(e => e.Key).Order());
        Assert.All(v4, e => Assert.Equal(30, e.Timeout));
        Assert.All(v4, e => Assert.InRange(e.Expires, 25, 30));
        Assert.All(v6, e => Assert.Equal(20, e.Timeout));
    }

    [RootLabFact]
    public async Task A_held_address_drops_new_connections_silently_while_its_established_ones_go_on()
    {
        await using var lab = await Lab.CreateAsync();
        using var guard = NetworkNamespace.Run(lab.Relay, () => TupleGuard.Open());
        var v4 = IPAddress.Parse("198.18.0.1");
        var v6 = IPAddress.Parse("2001:2::1");
        using var listener = NetworkNamespace.Run(lab.Relay, () =>
        {
            var socket = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { DualMode = true };
            socket.Bind(new IPEndPoint(IPAddress.IPv6Any, 0));
            socket.Listen();
            return socket;
        });
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        Socket Connect(IPAddress address, out bool connected)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            var attempt = socket.ConnectAsync(new IPEndPoint(address, port));
            // A held SYN gets no answer (the client would send it again after a second); a
            // refused one would fail at once.
            connected = attempt.Wait(TimeSpan.FromMilliseconds(700));
            return socket;
        }

        using var established = NetworkNamespace.Run(lab.Peer, () => Connect(v4, out _));
        using var accepted = listener.Accept();

        guard.HoldNewConnections([v4, IPAddress.Parse("::ffff:198.18.0.1"), v6], TimeSpan.FromSeconds(30));
        Assert.Equal(["198.18.0.1"], (await ElementsAsync(lab.Relay, "hold4")).Select(e => e.Key));
        Assert.Equal(["2001:2::1"], (await ElementsAsync(lab.Relay, "hold6")).Select(e => e.Key));

        var waiting = new List<Socket>();
        try
        {
            foreach (var address in new[] { v4, v6 })
            {
                waiting.Add(NetworkNamespace.Run(lab.Peer, () => Connect(address, out var connected)
                    is var socket && !connected ? socket : throw new Xunit.Sdk.XunitException($"a new connection to held {address} was answered")));
            }

            // The established connection is not new: its segments pass both ways.
            Exchange(established, accepted, "still");
            Exchange(accepted, established, "here");
            var drops = guard.Drops();
            _out.WriteLine($"drops: {drops}");
            Assert.True(drops.HeldConnectionAttempts >= 2, $"{drops.HeldConnectionAttempts} SYNs counted as held");
            Assert.Equal(0, drops.Packets);

            // Released: the waiting clients' retried SYNs are answered, and a new one at once.
            guard.ReleaseNewConnections([v4, v6]);
            guard.ReleaseNewConnections([v4]); // not held any more: not an error
            Assert.Empty(await ElementsAsync(lab.Relay, "hold4"));
            using var fresh = NetworkNamespace.Run(lab.Peer, () => Connect(v6, out var connected)
                is var socket && connected ? socket : throw new Xunit.Sdk.XunitException("a new connection after the release was not answered"));
            foreach (var socket in waiting)
            {
                Assert.True(SpinWait.SpinUntil(() => socket.Connected, TimeSpan.FromSeconds(10)), "a held client's retried SYN was not answered after the release");
            }
        }
        finally
        {
            waiting.ForEach(s => s.Dispose());
        }
    }

    [RootLabFact]
    public Task A_guarded_ipv4_connection_of_a_dual_stack_socket_moves_no_bytes_until_its_tuple_is_removed() =>
        GuardsConnectionAsync(dualStack: true, "198.18.0.1");

    [RootLabFact]
    public Task A_guarded_ipv6_connection_moves_no_bytes_until_its_tuple_is_removed() =>
        GuardsConnectionAsync(dualStack: false, "2001:2::1");

    private async Task GuardsConnectionAsync(bool dualStack, string relayAddress)
    {
        await using var lab = await Lab.CreateAsync();
        using var guard = NetworkNamespace.Run(lab.Relay, () => TupleGuard.Open());
        var address = IPAddress.Parse(relayAddress);
        using var listener = NetworkNamespace.Run(lab.Relay, () =>
        {
            var socket = dualStack
                ? new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { DualMode = true }
                : new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(dualStack ? IPAddress.IPv6Any : address, 0));
            socket.Listen();
            return socket;
        });
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        using var client = NetworkNamespace.Run(lab.Peer, () =>
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            socket.Connect(new IPEndPoint(address, port));
            return socket;
        });
        using var server = listener.Accept();
        server.NoDelay = true;
        var tuple = new TcpTuple((IPEndPoint)server.LocalEndPoint!, (IPEndPoint)server.RemoteEndPoint!);
        _out.WriteLine($"relay's socket: {tuple}");
        Assert.Equal(dualStack, tuple.Local.Address.IsIPv4MappedToIPv6);

        Exchange(client, server, "a");
        Exchange(server, client, "b");
        Assert.Equal(0, guard.Drops().Packets);

        guard.Add([tuple], TimeSpan.FromSeconds(60));
        var blocked = Stopwatch.StartNew();
        client.Send("c"u8);
        server.Send("d"u8);
        Assert.False(server.Poll(TimeSpan.FromMilliseconds(800), SelectMode.SelectRead), "the peer's byte reached the relay's socket while guarded");
        Assert.False(client.Poll(TimeSpan.FromMilliseconds(800), SelectMode.SelectRead), "the relay's byte reached the peer while guarded");
        var drops = guard.Drops();
        _out.WriteLine($"dropped in {blocked.ElapsedMilliseconds} ms: {drops}");
        Assert.True(drops.InboundPackets > 0, $"no inbound drop counted: {drops}");
        Assert.True(drops.OutboundPackets > 0, $"no outbound drop counted: {drops}");

        guard.Remove([tuple]);
        var moved = Stopwatch.StartNew();
        // Each side retransmits on its own timer, backed off while its segments were dropped.
        Assert.Equal("c", Receive(server, TimeSpan.FromSeconds(10)));
        Assert.Equal("d", Receive(client, TimeSpan.FromSeconds(10)));
        _out.WriteLine($"both bytes through {moved.ElapsedMilliseconds} ms after Remove");
        Exchange(client, server, "e");
    }

    [RootLabFact]
    public async Task An_element_expires_after_its_timeout_and_removing_it_then_is_not_an_error()
    {
        await using var lab = await Lab.CreateAsync();
        using var guard = NetworkNamespace.Run(lab.Relay, () => TupleGuard.Open());
        var tuple = Tuple("198.18.0.1", 443, "198.18.0.2", 40001);

        // 2 s rather than 1: a listing by an nft process right after the Add must still see the elements on a loaded machine.
        var added = Stopwatch.StartNew();
        guard.Add([tuple], TimeSpan.FromSeconds(2));
        var listed = await ElementsAsync(lab.Relay, "frz4");
        Assert.True(listed.Count == 2 || added.Elapsed > TimeSpan.FromSeconds(1.5), $"{listed.Count} elements listed {added.ElapsedMilliseconds} ms after Add");
        Assert.All(listed, e => Assert.Equal(2, e.Timeout));
        await Eventually.Holds(async () => (await ElementsAsync(lab.Relay, "frz4")).Count == 0, "the 2 s elements to expire",
            TimeSpan.FromSeconds(6), every: TimeSpan.FromMilliseconds(100));
        _out.WriteLine($"gone from the listing {added.ElapsedMilliseconds} ms after Add");
        Assert.True(added.Elapsed >= TimeSpan.FromSeconds(1.9), $"gone after {added.ElapsedMilliseconds} ms, before the timeout");

        guard.Remove([tuple]);
        guard.Remove([Tuple("198.18.0.1", 443, "198.18.0.9", 40009)]); // never added
    }

    [RootLabFact]
    public async Task Without_destroy_messages_remove_skips_the_elements_that_are_gone_and_removes_the_rest()
    {
        await using var lab = await Lab.CreateAsync();
        using var guard = NetworkNamespace.Run(lab.Relay, () => TupleGuard.Open());
        // Open asked the kernel; NFT_MSG_DESTROYSETELEM came with Linux 6.3.
        Assert.Equal(Environment.OSVersion.Version >= new Version(6, 3), guard.KernelHasDestroy);
        guard.KernelHasDestroy = false;

        TcpTuple[] kept = [Tuple("198.18.0.1", 443, "198.18.0.2", 40001), Tuple("2001:2::1", 443, "2001:2::2", 40002)];
        TcpTuple[] expiring = [Tuple("198.18.0.1", 443, "198.18.0.3", 40003), Tuple("198.18.0.1", 443, "198.18.0.4", 40004)];
        guard.Add(kept, TimeSpan.FromSeconds(60));
        guard.Add(expiring, TimeSpan.FromSeconds(1));
        await Eventually.Holds(async () => (await ElementsAsync(lab.Relay, "frz4")).Count == 2, "the 1 s elements to expire",
            TimeSpan.FromSeconds(5), every: TimeSpan.FromMilliseconds(100));

        // Expired, kept, expired, never added, kept, kept again: the expired and absent ones, and the repeat, are skipped.
        guard.Remove([expiring[0], kept[0], expiring[1], Tuple("198.18.0.1", 443, "198.18.0.9", 40009), kept[1], kept[0]]);
        Assert.Empty(await ElementsAsync(lab.Relay, "frz4"));
        Assert.Empty(await ElementsAsync(lab.Relay, "frz6"));
    }

    [RootLabFact]
    public async Task Five_thousand_tuples_go_in_with_one_batch_and_out_with_another()
    {
        await using var lab = await Lab.CreateAsync();
        using var guard = NetworkNamespace.Run(lab.Relay, () => TupleGuard.Open());
        var single = new List<(double Add, double Remove)>();
        TcpTuple[] one = [Tuple("198.18.0.1", 443, "198.18.0.2", 40001)];
        for (var i = 0; i < 21; i++)
        {
            var add = Stopwatch.StartNew();
            guard.Add(one, TimeSpan.FromSeconds(60));
            var added = add.Elapsed.TotalMilliseconds;
            var remove = Stopwatch.StartNew();
            guard.Remove(one);
            single.Add((added, remove.Elapsed.TotalMilliseconds));
        }

        _out.WriteLine($"1 tuple, median of 21: added in {single.Select(s => s.Add).Order().ElementAt(10):F3} ms, removed in {single.Select(s => s.Remove).Order().ElementAt(10):F3} ms");

        foreach (var v6 in new[] { false, true })
        {
            var tuples = new TcpTuple[5000];
            for (var i = 0; i < tuples.Length; i++)
            {
                tuples[i] = v6
                    ? Tuple("2001:2::1", 443, $"2001:2::1:{i:x}", 20_000 + i)
                    : Tuple("198.18.0.1", 443, $"198.19.{i / 250}.{i % 250 + 1}", 20_000 + i);
            }

            var set = v6 ? "frz6" : "frz4";
            for (var round = 0; round < 3; round++)
            {
                var add = Stopwatch.StartNew();
                guard.Add(tuples, TimeSpan.FromSeconds(60));
                add.Stop();
                Assert.Equal(10_000, (await ElementsAsync(lab.Relay, set)).Count);
                var remove = Stopwatch.StartNew();
                guard.Remove(tuples);
                remove.Stop();
                Assert.Empty(await ElementsAsync(lab.Relay, set));
                _out.WriteLine($"{(v6 ? "IPv6" : "IPv4")} round {round}: 5000 tuples (10000 elements) added in {add.Elapsed.TotalMilliseconds:F1} ms, removed in {remove.Elapsed.TotalMilliseconds:F1} ms");
                // Generous for a loaded 2-core machine; a batch per tuple or per element would take seconds.
                Assert.True(add.Elapsed < TimeSpan.FromSeconds(2) && remove.Elapsed < TimeSpan.FromSeconds(2), $"add {add.Elapsed}, remove {remove.Elapsed}");
            }
        }
    }

    [RootLabFact]
    public async Task Opening_again_replaces_a_leftover_table_a_table_deleted_underneath_is_named_and_dispose_deletes_it()
    {
        await using var lab = await Lab.CreateAsync();
        var first = NetworkNamespace.Run(lab.Relay, () => TupleGuard.Open());
        first.Add([Tuple("198.18.0.1", 443, "198.18.0.2", 40001)], TimeSpan.FromSeconds(60));
        Assert.Equal(2, (await ElementsAsync(lab.Relay, "frz4")).Count);

        // As after a crash: the table is still there, elements and all.
        var second = NetworkNamespace.Run(lab.Relay, () => TupleGuard.Open());
        Assert.Empty(await ElementsAsync(lab.Relay, "frz4"));
        using (var listing = JsonDocument.Parse(await NftOkAsync(lab.Relay, "-j", "list", "ruleset")))
        {
            var items = listing.RootElement.GetProperty("nftables").EnumerateArray().ToList();
            Assert.Single(items, i => i.TryGetProperty("table", out _));
            Assert.Equal(6, items.Count(i => i.TryGetProperty("rule", out _)));
        }

        second.Add([Tuple("198.18.0.1", 443, "198.18.0.2", 40001)], TimeSpan.FromSeconds(60));

        // Another program deletes the table: the guard says so, and how to get it back.
        await NftOkAsync(lab.Relay, "delete", "table", "inet", Table);
        var deleted = Assert.Throws<TupleGuardException>(() => second.Add([Tuple("198.18.0.1", 443, "198.18.0.2", 40001)], TimeSpan.FromSeconds(60)));
        _out.WriteLine(deleted.Message);
        Assert.Equal(Errno.ENOENT, deleted.Errno);
        Assert.StartsWith("tuple guard (table inet relay_handover): adding 1 tuple: No such file or directory", deleted.Message);
        Assert.EndsWith("opening the guard again makes it", deleted.Message);
        second.Dispose(); // its table is gone already
        second = NetworkNamespace.Run(lab.Relay, () => TupleGuard.Open());
        second.Add([Tuple("198.18.0.1", 443, "198.18.0.2", 40001)], TimeSpan.FromSeconds(60));

        second.Dispose();
        var gone = await NftAsync(lab.Relay, "list", "table", "inet", Table);
        Assert.NotEqual(0, gone.Exit);
        Assert.DoesNotContain(Table, await NftOkAsync(lab.Relay, "list", "ruleset"));
        second.Dispose();
        first.Dispose();
        Assert.Throws<ObjectDisposedException>(() => first.Add([Tuple("198.18.0.1", 443, "198.18.0.2", 40001)], TimeSpan.FromSeconds(1)));
    }

    [RootLabFact]
    public async Task Without_CAP_NET_ADMIN_open_fails_with_one_line_that_names_it()
    {
        await using var lab = await Lab.CreateAsync();
        var failed = Assert.Throws<InvalidOperationException>(() =>
            NetworkNamespace.Run(lab.Relay, () => TupleGuard.Open(), Capability.CAP_NET_ADMIN));
        var refused = Assert.IsType<TupleGuardException>(failed.InnerException);
        _out.WriteLine(refused.Message);
        Assert.Equal(Errno.EPERM, refused.Errno);
        Assert.Equal(
            "tuple guard (table inet relay_handover): cannot create the table: Operation not permitted: the relay needs CAP_NET_ADMIN (run it as root, or give it the capability: ops/systemd/relay.service)",
            refused.Message);
        Assert.DoesNotContain(Table, await NftOkAsync(lab.Relay, "list", "ruleset"));
    }

    [Fact]
    public void A_tuple_is_both_its_directions_with_mapped_addresses_unmapped_and_two_families_refused()
    {
        var flows = TupleGuard.Flows([Tuple("::ffff:198.18.0.1", 443, "::ffff:198.18.0.2", 40001), Tuple("2001:2::1", 443, "2001:2::2", 40002)]);
        Assert.Equal(
            ["198.18.0.1:443 -> 198.18.0.2:40001", "198.18.0.2:40001 -> 198.18.0.1:443", "[2001:2::1]:443 -> [2001:2::2]:40002", "[2001:2::2]:40002 -> [2001:2::1]:443"],
            flows.Select(f => f.ToString()));
        Assert.Equal([false, false, true, true], flows.Select(f => f.IsV6));

        var e = Assert.Throws<ArgumentException>(() => TupleGuard.Flows([Tuple("198.18.0.1", 443, "2001:2::2", 40001)]));
        Assert.StartsWith("tuple 198.18.0.1:443 <-> [2001:2::2]:40001: the local and remote addresses must both be IPv4 or both IPv6", e.Message);
        Assert.Throws<ArgumentException>(() => TupleGuard.Open("relay handover"));
        Assert.Throws<ArgumentException>(() => TupleGuard.Open(""));
    }

    private static TcpTuple Tuple(string local, int localPort, string remote, int remotePort) =>
        new(new IPEndPoint(IPAddress.Parse(local), localPort), new IPEndPoint(IPAddress.Parse(remote), remotePort));

    private static void Exchange(Socket from, Socket to, string text)
    {
        from.Send(Encoding.ASCII.GetBytes(text));
        Assert.Equal(text, Receive(to, TimeSpan.FromSeconds(5)));
    }

    private static string Receive(Socket socket, TimeSpan within)
    {
        Assert.True(socket.Poll(within, SelectMode.SelectRead), $"nothing arrived within {within.TotalSeconds:N0} s");
        var buffer = new byte[16];
        return Encoding.ASCII.GetString(buffer, 0, socket.Receive(buffer));
    }

    /// <summary>A <c>nft -j list</c> without what differs between two equal rulesets: the handles and nft's version.</summary>
    private static string Listing(string json)
    {
        var root = JsonNode.Parse(json)!;
        var items = root["nftables"]!.AsArray();
        foreach (var item in items.ToArray())
        {
            if (item!.AsObject().ContainsKey("metainfo"))
            {
                items.Remove(item);
                continue;
            }

            foreach (var (_, body) in item.AsObject())
            {
                body!.AsObject().Remove("handle");
            }
        }

        return root.ToJsonString();
    }

    private sealed record Element(string Key, int? Timeout, int Expires);

    /// <summary>The elements of set <paramref name="set"/> in the guard's table, as <c>nft -j list set</c> shows them.</summary>
    private static async Task<List<Element>> ElementsAsync(string ns, string set)
    {
        using var listing = JsonDocument.Parse(await NftOkAsync(ns, "-j", "list", "set", "inet", Table, set));
        var elements = new List<Element>();
        foreach (var item in listing.RootElement.GetProperty("nftables").EnumerateArray())
        {
            if (!item.TryGetProperty("set", out var body) || !body.TryGetProperty("elem", out var elems))
            {
                continue;
            }

            foreach (var elem in elems.EnumerateArray())
            {
                var e = elem.GetProperty("elem");
                var val = e.GetProperty("val");
                var key = val.ValueKind == JsonValueKind.String
                    ? val.GetString()!
                    : string.Join(" . ", val.GetProperty("concat").EnumerateArray().Select(v => v.ToString()));
                elements.Add(new Element(key, e.TryGetProperty("timeout", out var t) ? t.GetInt32() : null, e.GetProperty("expires").GetInt32()));
            }
        }

        return elements;
    }

    private static Task<ExternalProcess.RunResult> NftAsync(string ns, params string[] args) =>
        ExternalProcess.RunAsync("ip", ["netns", "exec", ns, "nft", .. args], null, TimeSpan.FromSeconds(30));

    private static async Task<string> NftOkAsync(string ns, params string[] args)
    {
        var run = await NftAsync(ns, args);
        Assert.True(run.Exit == 0, $"nft {string.Join(' ', args)} in {ns} failed ({run.Exit}): {run.Output}");
        return run.Stdout;
    }

    /// <summary>Two namespaces of this test, "relay" and "peer", joined by a veth pair; removed on dispose.</summary>
    private sealed class Lab : IAsyncDisposable
    {
        private Lab(string prefix) => Prefix = prefix;

        public string Prefix { get; }

        public string Relay => Prefix + "relay";

        public string Peer => Prefix + "peer";

        public static async Task<Lab> CreateAsync()
        {
            var lab = new Lab($"rh-guard-{Environment.ProcessId}-{Random.Shared.Next(1000, 9999)}-");
            try
            {
                foreach (var ns in new[] { lab.Relay, lab.Peer })
                {
                    await IpAsync("netns", "add", ns);
                    await IpAsync("-n", ns, "link", "set", "lo", "up");
                }

                await IpAsync("-n", lab.Relay, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", lab.Peer);
                var host = 1;
                foreach (var ns in new[] { lab.Relay, lab.Peer })
                {
                    await IpAsync("-n", ns, "addr", "add", $"198.18.0.{host}/24", "dev", "veth0");
                    await IpAsync("-n", ns, "addr", "add", $"2001:2::{host}/64", "dev", "veth0", "nodad");
                    await IpAsync("-n", ns, "link", "set", "veth0", "up");
                    host++;
                }

                return lab;
            }
            catch
            {
                await lab.DisposeAsync();
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var ns in new[] { Relay, Peer })
            {
                await ExternalProcess.RunAsync("ip", ["netns", "del", ns], null, TimeSpan.FromSeconds(30));
            }
        }
    }
}
