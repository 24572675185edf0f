using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using Relay.Tests.Cluster;
using Relay.Tests.Native;
using Relay.Tests.Support;
using Xunit.Abstractions;
using static Relay.Tests.Cluster.ClusterLab;

namespace Relay.Tests.Handover;

/// <summary>
/// A two-node cluster for the handover lab tests (root): <c>ops/cluster/cluster.sh up --egress</c>
/// under a prefix unique to the run (helper name and PID), a client and a server namespace
/// that count the resets they receive (an nft counter on the input hook), and the server's
/// listener on 198.18.1.100:9000 in the test process. <see cref="DisposeAsync"/> prints the
/// nodes' log tails and takes the whole cluster down.
/// </summary>
internal sealed class HandoverLab : IAsyncDisposable
{
    public const string Vip = "198.18.0.10";
    public const string Server = "198.18.1.100";

    private readonly ITestOutputHelper _out;
    private Socket? _listener;

    private HandoverLab(string name, ITestOutputHelper output)
    {
        _out = output;
        Script = ExternalProcess.FindInRepo("ops/cluster/cluster.sh");
        Prefix = $"{name}{Environment.ProcessId % 100000}x{Random.Shared.Next(1000, 9999)}-";
        State = Path.Combine(Path.GetTempPath(), Prefix + "cluster");
        // The tests' own streams load a 2-core machine: a longer heartbeat pause than the shipped
        // 600 ms keeps a busy moment from downing a node, which is not what these tests are about.
        Env = new Dictionary<string, string> { ["LAB_PREFIX"] = Prefix, ["PUBLISH"] = "250ms", ["HEARTBEAT_PAUSE"] = "3s" };
    }

    public string Script { get; }

    /// <summary>The namespaces' prefix: <c>{Prefix}cli</c>, <c>{Prefix}n1</c>...</summary>
    public string Prefix { get; }

    /// <summary>cluster.sh's state directory: node configs, logs and pids.</summary>
    public string State { get; }

    public Dictionary<string, string> Env { get; }

    /// <summary>Builds the cluster (not yet its nodes), the reset counters and the server's listener.</summary>
    public static async Task<HandoverLab> UpAsync(string name, ITestOutputHelper output)
    {
        var lab = new HandoverLab(name, output);
        try
        {
            await lab.ClusterAsync("up", "--egress");
            await CountResetsAsync(lab.Prefix + "cli");
            await CountResetsAsync(lab.Prefix + "srv");
            lab.StartCaptures();
            lab._listener = NetworkNamespace.Run(lab.Prefix + "srv", () =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                socket.Bind(new IPEndPoint(IPAddress.Parse(Server), 9000));
                socket.Listen(256);
                return socket;
            });
            return lab;
        }
        catch
        {
            await lab.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs <c>cluster.sh ARGS</c> (bounded to 120 s); its stdout. A non-zero exit fails the test.</summary>
    public Task<string> ClusterAsync(params string[] args) => RunAsync(Script, args, Env);

    public string LogOf(int node) => Path.Combine(State, $"n{node}.log");

    public Task<List<string>> WaitForLogAsync(int node, Func<string, bool> match, int count = 1) =>
        ClusterLab.WaitForLogAsync(LogOf(node), match, count);

    /// <summary>Starts node 1 and waits for it to own the service, then node 2 and waits for both to be Up.</summary>
    /// <param name="extraConfig">HOCON both nodes read after the lab's own (written to a file in the lab's state), or null.</param>
    /// <returns>The path of that file, for a node started again later; null without one.</returns>
    public async Task<string?> StartPairAsync(string? extraConfig = null)
    {
        string[] config = [];
        string? path = null;
        if (extraConfig is not null)
        {
            path = Path.Combine(State, "extra.conf");
            await File.WriteAllTextAsync(path, extraConfig);
            config = ["--config", path];
        }

        await ClusterAsync(["start", "1", .. config]);
        await WaitForLogAsync(1, l => l.Contains("ServiceTakenOver"));
        await ClusterAsync(["start", "2", .. config]);
        await WaitForLogAsync(2, l => l.Contains("MemberUp"), 2);
        return path;
    }

    /// <summary>The management token cluster.sh gives the lab's nodes.</summary>
    private const string LabToken = "cluster-lab";

    /// <summary>
    /// <c>relay handover --json [--to TO]</c>, the relay's own client, run in node
    /// <paramref name="node"/>'s namespace against its management endpoint: the outcome, and
    /// the client's exit code (0 completed, 3 not done).
    /// </summary>
    public async Task<(int Exit, JsonElement Outcome)> HandOverAsync(int node, string? to = null)
    {
        string[] args = ["exec", $"n{node}", "env", $"RELAY_MANAGEMENT_TOKEN={LabToken}", ExternalProcess.DotnetHost(),
            Path.Combine(AppContext.BaseDirectory, "relay.dll"), "handover", "--json", .. (to is null ? Array.Empty<string>() : ["--to", to])];
        var run = await ExternalProcess.RunAsync(Script, args, WithRelay(Env), TimeSpan.FromSeconds(120));
        Assert.False(run.TimedOut, run.Output);
        _out.WriteLine($"handover n{node} -> {to ?? "standby"}: exit {run.Exit}: {run.Output.Trim()}");
        using var json = JsonDocument.Parse(run.Stdout);
        return (run.Exit, json.RootElement.Clone());
    }

    /// <summary>
    /// Opens <paramref name="count"/> circuits from the client through the VIP, matches each
    /// to the server's socket by the 4-byte id its client sends first, and gives each end a
    /// <see cref="PatternStream"/> (client to server with seed id, back with 100 + id), on
    /// non-blocking sockets. Ids run from <paramref name="firstId"/>.
    /// </summary>
    public async Task<List<LabCircuit>> OpenCircuitsAsync(int count, int firstId = 0)
    {
        var accepting = AcceptAsync(_listener!, count);
        var clients = new Socket[count];
        for (var i = 0; i < count; i++)
        {
            var id = firstId + i;
            clients[i] = NetworkNamespace.Run(Prefix + "cli", () =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                socket.Connect(new IPEndPoint(IPAddress.Parse(Vip), 7000));
                socket.Send(BitConverter.GetBytes(id));
                return socket;
            });
        }

        var servers = new Socket[count];
        foreach (var server in await accepting.WaitAsync(TimeSpan.FromSeconds(30)))
        {
            var id = new byte[4];
            for (var got = 0; got < 4;)
            {
                got += await server.ReceiveAsync(id.AsMemory(got), SocketFlags.None).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
            }

            servers[BitConverter.ToInt32(id) - firstId] = server;
        }

        var circuits = new List<LabCircuit>(count);
        for (var i = 0; i < count; i++)
        {
            clients[i].Blocking = false;
            servers[i].Blocking = false;
            var id = firstId + i;
            circuits.Add(new LabCircuit(id,
                new PatternStream($"circuit {id} client", clients[i], txSeed: id, rxSeed: 100 + id),
                new PatternStream($"circuit {id} server", servers[i], txSeed: 100 + id, rxSeed: id)));
        }

        return circuits;
    }

    private static async Task<List<Socket>> AcceptAsync(Socket listener, int count)
    {
        var accepted = new List<Socket>();
        for (var i = 0; i < count; i++)
        {
            accepted.Add(await listener.AcceptAsync());
        }

        return accepted;
    }

    /// <summary>TCP resets that arrived in the client's or the server's namespace since <see cref="UpAsync"/>.</summary>
    public async Task<(long Client, long Server)> ResetsAsync() => (await ResetsAsync("cli"), await ResetsAsync("srv"));

    /// <summary>
    /// Ends the traffic (each end sends its tail and FIN), waits for every circuit to end within
    /// <paramref name="within"/>, and asserts that each arrived intact and that no reset
    /// reached the client or the server before both FINs of its connection had (a reset after
    /// them is a late duplicate's answer, with nothing left to cut: see ResetsAsync).
    /// </summary>
    public async Task FinishIntactAsync(LabTraffic traffic, IEnumerable<LabCircuit> circuits, TimeSpan within)
    {
        traffic.Finish();
        await traffic.Done.WaitAsync(within);
        foreach (var circuit in circuits)
        {
            Assert.True(circuit.Problem() is null, $"circuit {circuit.Id}: {circuit.Problem()}");
        }

        Assert.Equal((0L, 0L), await ResetsAsync());
    }

    /// <summary>How many flows (one per direction of a socket's tuple) the handover guard in <paramref name="ns"/> drops.</summary>
    public static async Task<int> GuardedTuplesAsync(string ns)
    {
        var listing = await RunAsync("ip", ["netns", "exec", ns, "nft", "-j", "list", "set", "inet", "relay_handover", "frz4"], null);
        using var json = JsonDocument.Parse(listing);
        return json.RootElement.GetProperty("nftables").EnumerateArray()
            .Where(item => item.TryGetProperty("set", out _))
            .Sum(item => item.GetProperty("set").TryGetProperty("elem", out var elements) ? elements.GetArrayLength() : 0);
    }

    /// <summary>The addresses on a node's interfaces, as <c>ip -br addr</c> lists them.</summary>
    public Task<string> AddressesAsync(int node) => RunAsync("ip", ["-n", $"{Prefix}n{node}", "-br", "addr"], null);

    /// <summary>Local ports tests may bind their own probing connections to: resets to them are not counted.</summary>
    public const int ProbePorts = 45000;

    /// <summary>An nft counter of TCP resets arriving in <paramref name="ns"/> (except to <see cref="ProbePorts"/>..+9).</summary>
    private static Task CountResetsAsync(string ns) =>
        RunAsync("sh", ["-c", "printf 'table inet rstmon {\\n set seen { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags dynamic; }\\n" +
            $" chain in {{\\n type filter hook input priority 0;\\n tcp dport {ProbePorts}-{ProbePorts + 9} accept\\n" +
            $" tcp flags & rst == rst counter add @seen {{ ip saddr . tcp sport . ip daddr . tcp dport }}\\n }}\\n }}\\n' | ip netns exec {ns} nft -f -"], null);

    /// <summary>
    /// The resets that arrived in <paramref name="ns"/> (<c>cli</c> or <c>srv</c>) and may have cut
    /// a connection: all of them, unless the capture shows each one came after both FINs of its
    /// connection. Those are the listener answering a duplicate ACK that reached the node after
    /// the relay's socket had closed normally (LAST_ACK, then CLOSED on the first ACK): every byte
    /// was delivered and the peer was in TIME_WAIT. A passive close anywhere draws them when the
    /// network duplicates a segment; they are printed, not counted.
    /// </summary>
    private async Task<long> ResetsAsync(string ns)
    {
        var listing = await RunAsync("ip", ["netns", "exec", Prefix + ns, "nft", "list", "table", "inet", "rstmon"], null);
        var at = listing.IndexOf("packets ", StringComparison.Ordinal);
        var count = long.Parse(listing[(at + 8)..].Split(' ')[0]);
        if (count == 0)
        {
            return 0;
        }

        // The set holds each reset's tuple (source . port . destination . port).
        _out.WriteLine($"resets arriving in {ns}:\n{listing}");
        var connections = ResetTuple.Matches(listing).Select(ConnectionPort).ToHashSet();
        // tcpdump writes a segment a moment after nft counts it: a reset that came last (the
        // late duplicate's answer after a close) can be counted and not yet in the file. Wait
        // for the capture to show every counted connection's reset (bounded); one it never
        // shows is counted.
        var (afterClose, traced) = await ResetOnlyAfterBothFinsAsync(ns);
        for (var wait = 0; wait < 20 && !connections.IsSubsetOf(traced); wait++)
        {
            await Task.Delay(100);
            (afterClose, traced) = await ResetOnlyAfterBothFinsAsync(ns);
        }

        await PrintCapturesAsync();
        if (connections.Count > 0 && connections.All(afterClose.Contains))
        {
            _out.WriteLine($"{ns}: each of the {count} reset(s) came after both FINs of its connection (a late duplicate after a normal close): not counted");
            return 0;
        }

        return count;
    }

    private static readonly Regex ResetTuple = new(@"(\d+\.\d+\.\d+\.\d+) \. (\d+) \. (\d+\.\d+\.\d+\.\d+) \. (\d+)");

    /// <summary>
    /// The connections (by their client-side port) whose every reset into <paramref name="ns"/>
    /// came after both of their FINs, and those with any reset, as <paramref name="ns"/>'s
    /// capture saw them.
    /// </summary>
    private async Task<(HashSet<string> AfterClose, HashSet<string> Traced)> ResetOnlyAfterBothFinsAsync(string ns)
    {
        var closedFirst = new HashSet<string>();
        if (_captures.FirstOrDefault(c => c.Namespace == ns) is not { File: { } file })
        {
            return (closedFirst, []);
        }

        var fins = new Dictionary<string, (bool Service, bool Peer)>();
        var early = new HashSet<string>();
        foreach (var (_, m) in (await ReadCaptureAsync(file)).Segments)
        {
            var fromService = m.Groups[2].Value is "7000" or "9000";
            var port = ConnectionPort(m);
            var flags = m.Groups[5].Value;
            fins.TryGetValue(port, out var seen);
            if (flags.Contains('F'))
            {
                fins[port] = fromService ? seen with { Service = true } : seen with { Peer = true };
            }

            // Into cli a reset comes from the service's port; into srv, to the server's.
            var intoNamespace = ns == "cli" ? m.Groups[2].Value == "7000" : m.Groups[4].Value == "9000";
            if (flags.Contains('R') && intoNamespace)
            {
                (seen is { Service: true, Peer: true } ? closedFirst : early).Add(port);
            }
        }

        var traced = closedFirst.Union(early).ToHashSet();
        closedFirst.ExceptWith(early);
        return (closedFirst, traced);
    }

    // Where each SYN, FIN and RST of the service and the server went, per namespace, so that a
    // reset a test counts says when it came and which node sent it (tcpdump, when installed).
    private readonly List<(string Namespace, string File, Process Dump)> _captures = [];

    private void StartCaptures()
    {
        var tcpdump = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Append("/usr/sbin")
            .Select(dir => Path.Combine(dir, "tcpdump")).FirstOrDefault(File.Exists);
        if (tcpdump is null)
        {
            _out.WriteLine("tcpdump is not installed: a reset will be counted but not traced");
            return;
        }

        foreach (var ns in new[] { "cli", "srv", "n1", "n2" })
        {
            var file = Path.Combine(State, $"{ns}.pcap");
            _captures.Add((ns, file, ExternalProcess.Start("ip", ["netns", "exec", Prefix + ns, tcpdump, "-i", "any", "-U", "-nn", "-s", "96",
                "-w", file, "(tcp port 7000 or tcp port 9000) and (tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0)"])));
        }
    }

    /// <summary>A connection by its client-side port: the one of a segment or tuple that is neither the service's nor the server's.</summary>
    private static string ConnectionPort(Match m) => m.Groups[2].Value is "7000" or "9000" ? m.Groups[4].Value : m.Groups[2].Value;

    /// <summary>A capture's segments in order, each line with its parsed addresses and flags; and tcpdump's own words.</summary>
    private static async Task<(List<(string Line, Match Match)> Segments, string Stderr)> ReadCaptureAsync(string file)
    {
        var read = await ExternalProcess.RunAsync("tcpdump", ["-r", file, "-nn", "-tttt"], null, TimeSpan.FromSeconds(30));
        return (read.Stdout.Split('\n').Select(line => (Line: line, Match: Segment.Match(line))).Where(s => s.Match.Success).ToList(), read.Stderr);
    }

    private static readonly Regex Segment = new(@" (\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+): Flags \[([^\]]*)\]");

    private bool _capturesPrinted;

    /// <summary>Prints the nodes' abort counters and the captured segments of every reset connection, once per lab.</summary>
    private async Task PrintCapturesAsync()
    {
        if (_capturesPrinted)
        {
            return;
        }

        _capturesPrinted = true;
        // Why a node's kernel reset a connection: closed with unread bytes (AbortOnClose), bytes
        // after its close (AbortOnData), SO_LINGER 0 (AbortOnLinger), memory, timeouts.
        foreach (var node in new[] { "n1", "n2" })
        {
            var counters = await ExternalProcess.RunAsync("ip", ["netns", "exec", Prefix + node, "cat", "/proc/net/netstat"], null, TimeSpan.FromSeconds(30));
            var lines = counters.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var names = lines.Length > 1 ? lines[0].Split(' ') : [];
            var values = lines.Length > 1 ? lines[1].Split(' ') : [];
            _out.WriteLine($"--- {node}: " + string.Join(", ", names.Zip(values).Where(p => p.First.StartsWith("TCPAbortOn", StringComparison.Ordinal)).Select(p => $"{p.First} {p.Second}")));
        }

        foreach (var (ns, file, _) in _captures)
        {
            var (segments, stderr) = await ReadCaptureAsync(file);
            var reset = segments.Where(s => s.Match.Groups[5].Value.Contains('R')).Select(s => ConnectionPort(s.Match)).ToHashSet();
            _out.WriteLine($"--- {ns}: {segments.Count} SYN, FIN and RST segments captured, {reset.Count} connection(s) with a reset" +
                (segments.Count == 0 ? $" ({stderr.Trim()})" : "; each of their segments:"));
            foreach (var (line, _) in segments.Where(s => reset.Contains(ConnectionPort(s.Match))))
            {
                _out.WriteLine(line);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var (_, _, dump) in _captures)
        {
            ExternalProcess.Stop(dump);
        }

        _listener?.Dispose();
        foreach (var log in new[] { "n1.log", "n2.log" })
        {
            var path = Path.Combine(State, log);
            if (File.Exists(path))
            {
                _out.WriteLine($"--- {log} (tail)\n" + string.Join('\n', File.ReadLines(path).TakeLast(40)));
            }
        }

        await RunAsync(Script, ["down"], Env, check: false);
    }
}

/// <summary>One circuit of the lab: the client's end and the server's, each writing and checking a pattern.</summary>
internal sealed class LabCircuit(int id, PatternStream client, PatternStream server) : IDisposable
{
    public int Id { get; } = id;

    public PatternStream Client { get; } = client;

    public PatternStream Server { get; } = server;

    /// <summary>What is wrong with the circuit once both ends are done: null when every byte arrived once, in order, with its FIN.</summary>
    public string? Problem()
    {
        foreach (var (end, peer) in new[] { (Client, Server), (Server, Client) })
        {
            if (end.Error is not null || end.BadAt is not null || !end.Eof || end.Received != peer.Sent)
            {
                return $"{end}; its peer {peer}";
            }
        }

        return null;
    }

    public void Dispose()
    {
        Client.Socket.Dispose();
        Server.Socket.Dispose();
    }
}

/// <summary>
/// Drives the lab's circuits on a thread of its own: every end paced at <see cref="Rate"/>
/// bytes/s both ways until <see cref="Finish"/>, then each end writes <see cref="Tail"/> more
/// bytes (so bytes flow after the last move) and its FIN, and reads to the peer's FIN.
/// </summary>
internal sealed class LabTraffic : IDisposable
{
    private readonly IReadOnlyList<LabCircuit> _circuits;
    private readonly Thread _thread;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _finish;

    /// <param name="idle">Circuits that send nothing until <see cref="Finish"/>.</param>
    public LabTraffic(IReadOnlyList<LabCircuit> circuits, long rate, IReadOnlySet<int> idle, long tail = 64 * 1024)
    {
        _circuits = circuits;
        foreach (var circuit in circuits)
        {
            foreach (var end in (PatternStream[])[circuit.Client, circuit.Server])
            {
                end.Rate = rate;
                end.SendLimit = idle.Contains(circuit.Id) ? 0 : long.MaxValue;
            }
        }

        Tail = tail;
        _thread = new Thread(Run) { IsBackground = true, Name = "lab-traffic" };
        _thread.Start();
    }

    public long Tail { get; }

    /// <summary>Completes when every circuit is done both ways; faults with the streams' state when the limit passes.</summary>
    public Task Done => _done.Task;

    /// <summary>Bytes both ways, all circuits, checked so far (read from another thread: a snapshot).</summary>
    public long Received => _circuits.Sum(c => c.Client.Received + c.Server.Received);

    public void Finish() => _finish = true;

    private void Run()
    {
        try
        {
            var ends = _circuits.SelectMany(c => (PatternStream[])[c.Client, c.Server]).ToList();
            var finishing = false;
            var clock = Stopwatch.StartNew();
            while (!_stop.IsCancellationRequested)
            {
                if (_finish && !finishing)
                {
                    finishing = true;
                    foreach (var end in ends)
                    {
                        end.SendLimit = Math.Min(end.SendLimit, end.Sent) + Tail;
                        end.ShutdownAtLimit = true;
                        end.Repace();
                    }
                }

                if (finishing && ends.All(e => e.Done(expectShut: true)))
                {
                    break;
                }

                if (clock.Elapsed > TimeSpan.FromMinutes(5))
                {
                    throw new TimeoutException($"the circuits did not finish in 5 min: {string.Join("; ", ends)}");
                }

                var moved = false;
                foreach (var end in ends)
                {
                    moved |= end.Step();
                }

                if (!moved)
                {
                    Thread.Sleep(1);
                }
            }

            _done.TrySetResult();
        }
        catch (Exception e)
        {
            _done.TrySetException(e);
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _thread.Join(TimeSpan.FromSeconds(10));
        _stop.Dispose();
    }
}
