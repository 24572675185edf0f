using System.Diagnostics;
using Relay.Tests.Native;
using Relay.Tests.Support;
using Xunit.Abstractions;
using static Relay.Tests.Cluster.ClusterLab;
using static Relay.Tests.Support.ExternalProcess;

namespace Relay.Tests.Cluster;

/// <summary>
/// The capabilities ops/systemd/relay.service grants are enough, and the relay needs no
/// other (root): one relay node of ops/cluster/cluster.sh runs as the unit runs it, root
/// limited by its CapabilityBoundingSet (setpriv, with no-new-privs), with no ip or arping
/// on its PATH. It must take the service, add the VIP and announce it with no VIP error
/// logged: the client's entry for the VIP, set beforehand to another MAC, must move to the
/// node's, and a capture in the client's namespace must see exactly
/// 3 gratuitous ARPs from
/// the node, about a second apart. Without CAP_NET_RAW in the unit the announcement cannot
/// be sent and this fails.
/// </summary>
public sealed class SystemdUnitLabTests
{
    private const string Vip = "198.18.0.10";

    private static readonly Dictionary<string, int> CapabilityNumbers = new()
    {
        [nameof(Capability.CAP_NET_BIND_SERVICE)] = Capability.CAP_NET_BIND_SERVICE,
        [nameof(Capability.CAP_NET_BROADCAST)] = Capability.CAP_NET_BROADCAST,
        [nameof(Capability.CAP_NET_ADMIN)] = Capability.CAP_NET_ADMIN,
        [nameof(Capability.CAP_NET_RAW)] = Capability.CAP_NET_RAW,
        [nameof(Capability.CAP_SYS_ADMIN)] = Capability.CAP_SYS_ADMIN,
        [nameof(Capability.CAP_SYS_RESOURCE)] = Capability.CAP_SYS_RESOURCE,
    };

    /// <summary>
    /// Run in the client's namespace: prints "ready", then "garp MS SENDER-MAC" for each
    /// broadcast ARP request whose sender and target are the VIP, MS counted from the first,
    /// until 4 s after the first (the last is due at 2 s) or 120 s without one; then "done".
    /// </summary>
    private const string Capture = """
        import socket, sys, time
        vip = socket.inet_aton(sys.argv[1])
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
        s.settimeout(0.2)
        print("ready", flush=True)
        first = None
        start = time.monotonic()
        while (first is None and time.monotonic() - start < 120) or (first is not None and time.monotonic() - first < 4):
            try:
                f = s.recv(100)
            except socket.timeout:
                continue
            if len(f) >= 42 and f[0:6] == b"\xff" * 6 and f[20:22] == b"\x00\x01" and f[28:32] == vip and f[38:42] == vip:
                now = time.monotonic()
                first = first or now
                print("garp", int((now - first) * 1000), f[22:28].hex(":"), flush=True)
        print("done", flush=True)
        """;

    private readonly ITestOutputHelper _out;

    public SystemdUnitLabTests(ITestOutputHelper output) => _out = output;

    [RootLabFact]
    public async Task A_node_with_only_the_units_capabilities_adds_the_vip_and_announces_it_three_times()
    {
        var unit = File.ReadAllLines(FindInRepo("ops/systemd/relay.service"));
        var ambient = Capabilities(unit, "AmbientCapabilities=");
        Assert.Equal(ambient, Capabilities(unit, "CapabilityBoundingSet="));
        var mask = ambient.Aggregate(0UL, (m, c) => m | 1UL << (CapabilityNumbers.TryGetValue(c, out var n) ? n
            : throw new InvalidOperationException($"relay.service grants {c}; add its number to this test")));
        var caps = string.Join(',', ambient.Select(c => "+" + c["CAP_".Length..].ToLowerInvariant()));

        var script = FindInRepo("ops/cluster/cluster.sh");
        var prefix = $"rsu{Environment.ProcessId % 100000}x{Random.Shared.Next(1000, 9999)}-";
        var state = Path.Combine(Path.GetTempPath(), prefix + "cluster");
        var relay = $"{Which("setpriv")} --no-new-privs --bounding-set=-all,{caps} --inh-caps=-all,{caps} --ambient-caps=-all,{caps} "
            + $"{Which(DotnetHost())} {Path.Combine(AppContext.BaseDirectory, "relay.dll")}";
        var env = new Dictionary<string, string> { ["LAB_PREFIX"] = prefix, ["RELAY"] = relay };
        Process? capture = null;
        try
        {
            await RunAsync(script, ["up"], env);
            const string elsewhere = "02:00:00:00:00:01";
            await Neighbours.IpAsync("-n", prefix + "cli", "neigh", "replace", Vip, "lladdr", elsewhere, "dev", "eth0", "nud", "stale");
            var nodeMac = await Neighbours.MacAsync(prefix + "n1", "eth0");
            capture = Start("ip", ["netns", "exec", prefix + "cli", "python3", "-c", Capture, Vip]);
            Assert.Equal("ready", await ReadLineAsync(capture, TimeSpan.FromSeconds(30)));

            // Alone, node 1 (the first seed) joins itself after the seed-node timeout and takes the service.
            await RunAsync(script, ["start", "1"], env);
            var log = Path.Combine(state, "n1.log");
            await WaitForLogAsync(log, l => l.Contains("ServiceTakenOver"), 1);

            var pid = File.ReadAllText(Path.Combine(state, "n1.pid")).Trim();
            var status = File.ReadAllLines($"/proc/{pid}/status");
            var effective = Convert.ToUInt64(status.Single(l => l.StartsWith("CapEff:", StringComparison.Ordinal))["CapEff:".Length..].Trim(), 16);
            _out.WriteLine($"relay: {status.Single(l => l.StartsWith("Uid:", StringComparison.Ordinal))}, CapEff {effective:x} ({string.Join(' ', ambient)})");
            Assert.Equal(mask, effective);

            Assert.Contains($"{Vip}/24", await Neighbours.IpAsync("-n", prefix + "n1", "addr", "show", "dev", "eth0"));
            var moved = await Neighbours.AwaitAsync(prefix + "cli", "eth0", Vip, e => e.Mac == nodeMac,
                $"the client's entry for the VIP to move from {elsewhere} to the node's MAC {nodeMac}", TimeSpan.FromSeconds(3));
            _out.WriteLine($"client's entry for the VIP: {elsewhere} -> {moved.Mac} ({moved.State})");
            var lines = await WaitForLogAsync(log, _ => true, 0);
            Assert.DoesNotContain(lines, l => l.Contains("VipAddFailed") || l.Contains("VipAnnounceFailed") || l.Contains("VipRemoveFailed"));

            var garps = new List<string>();
            for (var line = await ReadLineAsync(capture, TimeSpan.FromSeconds(30)); line is not null && line != "done"; line = await ReadLineAsync(capture, TimeSpan.FromSeconds(30)))
            {
                Assert.StartsWith("garp ", line);
                garps.Add(line);
            }

            _out.WriteLine(string.Join('\n', garps));
            Assert.Equal(3, garps.Count); // docs/OPERATIONS.md: 3, a second apart
            Assert.All(garps, g => Assert.EndsWith(" " + nodeMac, g));
            var at = garps.Select(g => int.Parse(g.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            for (var i = 1; i < at.Length; i++)
            {
                // A second apart, give or take a starved machine's timer.
                Assert.InRange(at[i] - at[i - 1], 700, 2500);
            }
        }
        finally
        {
            Stop(capture);
            var path = Path.Combine(state, "n1.log");
            if (File.Exists(path))
            {
                _out.WriteLine("--- n1.log (VIP and service lines)\n" + string.Join('\n',
                    (await WaitForLogAsync(path, _ => true, 0)).Where(l => l.Contains("Vip") || l.Contains("Service"))));
            }

            await RunAsync(script, ["down"], env, check: false);
        }
    }

    private static string[] Capabilities(string[] unit, string key) =>
        [.. unit.Single(l => l.StartsWith(key, StringComparison.Ordinal))[key.Length..]
            .Split(' ', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal)];

    /// <summary><paramref name="program"/> as an absolute path: the relay's PATH will not find it.</summary>
    private static string Which(string program) =>
        Path.IsPathRooted(program) ? program
        : (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, program)).FirstOrDefault(File.Exists)
          ?? throw new FileNotFoundException($"{program} is not on the PATH (setpriv is in util-linux)");
}
