using System.Diagnostics;
using Relay.Tests.Support;
using static Relay.Tests.Cluster.ClusterLab;
using static Relay.Tests.Support.ExternalProcess;
using Xunit.Abstractions;

namespace Relay.Tests.Cluster;

/// <summary>
/// The egress VIP with real relay processes (root): <c>ops/cluster/cluster.sh up --egress</c>
/// puts the echo server on a second bridge (198.18.1.0/24, a unique namespace prefix per run,
/// removed in finally), where the owner also holds the egress VIP 198.18.1.10 on its eth1. A
/// circuit through the VIP must reach the server FROM the egress VIP: the server's only
/// established connection has 198.18.1.10 as its peer, and the owner holds the other end of
/// that very 4-tuple (bound to the node's own 198.18.1.2 it would not float). The owner is
/// then killed with SIGKILL: the standby takes both addresses, its announcement of the egress
/// VIP moves the server's neighbour entry to the standby's eth1 MAC, and a new circuit again
/// reaches the server from the egress VIP, now held by the standby.
/// </summary>
public sealed class EgressVipLabTests
{
    private const string Vip = "198.18.0.10";
    private const string EgressVip = "198.18.1.10";
    private const string Server = "198.18.1.100:9000";

    // Holds one circuit through the VIP (connect retried for 20 s, as the owner may be taking
    // over), echoes a greeting through it, prints "open", and keeps it until stdin closes.
    private const string HoldCircuit = """
        import socket, sys, time
        deadline = time.monotonic() + 20
        while True:
            try:
                s = socket.create_connection((sys.argv[1], 7000), timeout=1)
                s.settimeout(5)
                s.sendall(b"egress\n")
                got = b""
                while len(got) < 7:
                    chunk = s.recv(7 - len(got))
                    if not chunk:
                        raise ConnectionError("closed before the echo")
                    got += chunk
                break
            except OSError as e:
                if time.monotonic() > deadline:
                    print(f"failed {e}", flush=True)
                    sys.exit(1)
                time.sleep(0.05)
        print("open", flush=True)
        sys.stdin.read()
        """;

    private readonly ITestOutputHelper _out;

    public EgressVipLabTests(ITestOutputHelper output) => _out = output;

    [RootLabFact]
    public async Task Upstream_connections_come_from_the_egress_vip_on_the_owner_and_again_on_the_standby_after_kill_9()
    {
        var script = FindInRepo("ops/cluster/cluster.sh");
        var prefix = $"reg{Environment.ProcessId % 100000}x{Random.Shared.Next(1000, 9999)}-";
        var state = Path.Combine(Path.GetTempPath(), prefix + "cluster");
        var env = new Dictionary<string, string> { ["LAB_PREFIX"] = prefix, ["PUBLISH"] = "250ms" };
        Process? first = null;
        Process? second = null;
        try
        {
            await RunAsync(script, ["up", "--egress"], env);
            await RunAsync(script, ["echo"], env);
            await RunAsync(script, ["start", "1"], env);
            await WaitForLogAsync(Path.Combine(state, "n1.log"), l => l.Contains("ServiceTakenOver"), 1);
            await RunAsync(script, ["start", "2"], env);
            await WaitForLogAsync(Path.Combine(state, "n2.log"), l => l.Contains("MemberUp"), 2);
            var ownerMac = await Neighbours.MacAsync(prefix + "n1", "eth1");
            var standbyMac = await Neighbours.MacAsync(prefix + "n2", "eth1");

            first = await HoldCircuitAsync(prefix);
            var before = await ServerPeerAsync(prefix, "n1");
            _out.WriteLine($"before the kill: the server's peer is {before}, held by n1");
            // The server learnt the egress VIP's MAC from the owner's ARP request (STALE, then
            // DELAY while the circuit's traffic confirms it): any state holding a MAC will do.
            var warm = await Neighbours.AwaitAsync(prefix + "srv", "eth0", EgressVip, e => e.Mac is not null,
                "an entry for the egress VIP on the server after the circuit");
            Assert.Equal(ownerMac, warm.Mac);

            await RunAsync(script, ["kill", "1"], env);
            await WaitForLogAsync(Path.Combine(state, "n2.log"), l => l.Contains("ServiceTakenOver") && l.Contains($"egress VIP {EgressVip}/24 on eth1"), 1);
            var moved = await Neighbours.AwaitAsync(prefix + "srv", "eth0", EgressVip, e => e.Mac == standbyMac,
                $"the server's entry for the egress VIP to move from the dead owner's eth1 MAC {ownerMac} to the standby's {standbyMac}",
                TimeSpan.FromSeconds(3));
            _out.WriteLine($"server's entry for the egress VIP: {warm.Mac} ({warm.State}) before the kill, {moved.Mac} ({moved.State}) after the take-over");
            // The dead node's kernel closed its upstream socket (FIN): the server drops that connection.
            await Eventually.Holds(async () => (await ServerPeersAsync(prefix)).Count == 0,
                "the server's connection from the killed node to end", TimeSpan.FromSeconds(10), every: TimeSpan.FromMilliseconds(100));

            second = await HoldCircuitAsync(prefix);
            var after = await ServerPeerAsync(prefix, "n2");
            _out.WriteLine($"after the take-over: the server's peer is {after}, held by n2");
        }
        finally
        {
            Stop(first);
            Stop(second);
            foreach (var log in new[] { "n1.log", "n2.log" })
            {
                var path = Path.Combine(state, log);
                if (File.Exists(path))
                {
                    _out.WriteLine($"--- {log} (tail)\n" + string.Join('\n', File.ReadLines(path).TakeLast(20)));
                }
            }

            await RunAsync(script, ["down"], env, check: false);
        }
    }

    /// <summary>A client in cli holding one circuit through the VIP, once its greeting has come back.</summary>
    private static async Task<Process> HoldCircuitAsync(string prefix)
    {
        var client = Start("ip", ["netns", "exec", prefix + "cli", "python3", "-c", HoldCircuit, Vip]);
        var line = await ReadLineAsync(client, TimeSpan.FromSeconds(30));
        if (line != "open")
        {
            client.Kill(entireProcessTree: true); // its stderr ends with it
            var error = await client.StandardError.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(10));
            Stop(client);
            Assert.Fail($"the client's circuit through the VIP: {line ?? "(no output)"} {error}");
        }

        return client;
    }

    /// <summary>
    /// The peer of the server's one established connection, which must be the egress VIP, and
    /// which <paramref name="node"/> must hold as the local end of its connection to the server.
    /// </summary>
    private static async Task<string> ServerPeerAsync(string prefix, string node)
    {
        var peers = await ServerPeersAsync(prefix);
        var peer = Assert.Single(peers);
        Assert.StartsWith(EgressVip + ":", peer);
        var held = await EstablishedAsync(prefix + node, $"dst {Server}");
        Assert.Contains((peer, Server), held);
        return peer;
    }

    /// <summary>The peers of the server's established connections on :9000.</summary>
    private static async Task<List<string>> ServerPeersAsync(string prefix) =>
        (await EstablishedAsync(prefix + "srv", "sport = :9000")).Select(c => c.Remote).ToList();

    /// <summary>(local, remote) of each established TCP connection in <paramref name="ns"/> that <paramref name="filter"/> (an ss filter) selects.</summary>
    private static async Task<List<(string Local, string Remote)>> EstablishedAsync(string ns, string filter)
    {
        var ss = await RunAsync("ip", ["netns", "exec", ns, "ss", "-Htn", "state", "established", filter], null);
        // With a state filter, ss prints: Recv-Q Send-Q Local:Port Peer:Port.
        return ss.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(f => (f[2], f[3]))
            .ToList();
    }
}
