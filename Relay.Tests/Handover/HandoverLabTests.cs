using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Relay.Tests.Native;
using Relay.Tests.Support;
using Xunit.Abstractions;
using static Relay.Tests.Cluster.ClusterLab;
using static Relay.Tests.Support.ExternalProcess;

namespace Relay.Tests.Handover;

/// <summary>
/// Live handover with real relay processes (root): <c>ops/cluster/cluster.sh up --egress</c>
/// builds a client, two relay nodes and a server in network namespaces (a unique prefix per
/// run, removed in finally), with the service VIP on the client side and the egress VIP on the
/// server side. Circuits carry a verifiable pattern (<see cref="PatternStream"/>) both ways
/// through the VIP: some paced, some idle until after the first move, one whose client does
/// not read (so the relay's and the kernel's queues are full when it moves), and half-closed
/// ones: the client finished (its bytes and FIN delivered) while the server streams on, the
/// reverse, and one whose server's FIN waits in the relay behind bytes its stalled client has
/// not taken. The owner hands them all to the standby, and the standby hands them back; every
/// circuit must move both times, every byte arrive exactly once and in order, every FIN
/// arrive, no reset reach the client or the server (an nft counter in each namespace), and
/// every circuit close with its FINs.
/// </summary>
public sealed class HandoverLabTests
{
    private const string Vip = "198.18.0.10";
    private const string Server = "198.18.1.100";
    private const string EgressVip = "198.18.1.10";
    // A paced end streams until the circuits are back on the first node, however long the
    // handovers take on a busy machine, then sends Tail more bytes and its FIN.
    private const long Streaming = long.MaxValue;
    private const long Rate = 256 * 1024;
    private const long Tail = 64 * 1024;

    // What the stalled circuit's server sends, unpaced, so that every queue is full when it moves.
    private const long Total = 4L * 1024 * 1024;

    // What the side that finishes first sends before its FIN.
    private const long Short = 256 * 1024;

    // What the server sends to the stalled client before its FIN: more than the client's small
    // receive buffer and the relay's send queue toward it take, less than the relay's window
    // (1 MiB), so the relay reads it all and its FIN, and holds the rest with the FIN owed.
    private const long Queued = 384 * 1024;
    private const int SmallReceiveBuffer = 8 * 1024;

    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(90);

    private static readonly Kind[] Kinds =
    [
        Kind.Stalled, Kind.Idle, Kind.Idle,
        .. Enumerable.Repeat(Kind.Streaming, 9),
        Kind.ClientFinished, Kind.ClientFinished, Kind.ServerFinished, Kind.ServerFinished, Kind.FinQueued,
    ];

    private readonly ITestOutputHelper _out;
    private string? _lastQueues;

    public HandoverLabTests(ITestOutputHelper output) => _out = output;

    private enum Kind
    {
        /// <summary>Both stream; the client reads nothing until after the first move (the server sends unpaced).</summary>
        Stalled,

        /// <summary>Nothing moves until after the first move.</summary>
        Idle,

        /// <summary>Both stream, paced.</summary>
        Streaming,

        /// <summary>The client sends <see cref="Short"/> bytes and its FIN, which reach the server before the first move; the server streams on.</summary>
        ClientFinished,

        /// <summary>The reverse of <see cref="ClientFinished"/>.</summary>
        ServerFinished,

        /// <summary>The server sends <see cref="Queued"/> bytes and its FIN to a client that reads nothing until after the first move; the client streams.</summary>
        FinQueued,
    }

    [RootLabFact]
    public async Task Circuits_streaming_both_ways_or_half_closed_move_to_the_standby_and_back_with_every_byte_every_FIN_and_no_reset()
    {
        var script = FindInRepo("ops/cluster/cluster.sh");
        var prefix = $"rho{Environment.ProcessId % 100000}x{Random.Shared.Next(1000, 9999)}-";
        var state = Path.Combine(Path.GetTempPath(), prefix + "cluster");
        // The test's own streams load a 2-core machine: a longer heartbeat pause than the shipped
        // 600 ms keeps a busy moment from downing a node, which is not what this test is about.
        var env = new Dictionary<string, string> { ["LAB_PREFIX"] = prefix, ["PUBLISH"] = "250ms", ["HEARTBEAT_PAUSE"] = "3s" };
        Socket? listener = null;
        var circuits = new List<LabCircuit>();
        using var stop = new CancellationTokenSource();
        Task? pumping = null;
        try
        {
            await RunAsync(script, ["up", "--egress"], env);
            foreach (var node in new[] { "n1.conf", "n2.conf" })
            {
                // Reads of 16 KiB rather than 256: the window (1 MiB) is then 64 segments, so
                // the relay can hold the queued circuit's bytes and still have a segment to
                // read its FIN with, however the bytes arrive (each read takes a segment).
                // And copying, not splicing: the queued circuit's FIN must wait behind bytes the
                // relay holds, and a spliced direction reads its EOF only with its pipe empty.
                // (CircuitFreezeTests move spliced circuits.)
                await File.AppendAllTextAsync(Path.Combine(state, node), "relay.defaults.write-size = 16k\nrelay.defaults.splice = off\n");
            }

            await CountResetsAsync(prefix + "cli");
            await CountResetsAsync(prefix + "srv");
            listener = NetworkNamespace.Run(prefix + "srv", () =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                socket.Bind(new IPEndPoint(IPAddress.Parse(Server), 9000));
                socket.Listen(64);
                return socket;
            });
            var serverSides = AcceptAsync(listener, Kinds.Length);

            await RunAsync(script, ["start", "1"], env);
            await WaitForLogAsync(Path.Combine(state, "n1.log"), l => l.Contains("ServiceTakenOver"), 1);
            await RunAsync(script, ["start", "2"], env);
            await WaitForLogAsync(Path.Combine(state, "n2.log"), l => l.Contains("MemberUp"), 2);

            var clients = new Socket[Kinds.Length];
            for (var i = 0; i < Kinds.Length; i++)
            {
                var id = i;
                clients[i] = NetworkNamespace.Run(prefix + "cli", () =>
                {
                    var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    if (Kinds[id] == Kind.FinQueued)
                    {
                        socket.ReceiveBufferSize = SmallReceiveBuffer; // before connect: the window is negotiated small
                    }

                    socket.Connect(new IPEndPoint(IPAddress.Parse(Vip), 7000));
                    socket.Send(BitConverter.GetBytes(id));
                    return socket;
                });
            }

            var servers = await serverSides.WaitAsync(TimeSpan.FromSeconds(30));
            // Match each server-side socket to its circuit by the id its client sends first.
            var byId = (await Task.WhenAll(servers.Select(ReadIdAsync))).ToDictionary(s => s.Id, s => s.Socket);
            for (var i = 0; i < Kinds.Length; i++)
            {
                circuits.Add(new LabCircuit(i, Kinds[i], clients[i], byId[i]));
            }

            // One thread drives every stream (PatternStream is single-threaded); changes to the
            // streams are posted to it and run between passes.
            var posted = new ConcurrentQueue<Action>();
            var streams = circuits.SelectMany(c => (PatternStream[])[c.Client, c.Server]).ToList();
            pumping = Task.Factory.StartNew(() => PatternStream.Pump(streams, () =>
            {
                while (posted.TryDequeue(out var action))
                {
                    action();
                }

                return circuits.All(c => c.Done);
            }, Limit, stop.Token), TaskCreationOptions.LongRunning);

            // Before the first move: the half-closed circuits are half-closed, the FIN of the
            // queued one waits in the relay behind bytes, and the streams have run a while.
            var started = DateTime.UtcNow;
            await Eventually.Holds(() => circuits.All(c => c.Kind switch
            {
                Kind.ClientFinished => c.Server.Eof,
                Kind.ServerFinished => c.Client.Eof,
                Kind.FinQueued => c.Server.Shut,
                _ => true,
            }), "the half-closed circuits' first FINs to be delivered", TimeSpan.FromSeconds(30),
                state: () => string.Join("; ", circuits.Where(c => c.Kind != Kind.Streaming)));
            var queued = circuits.Single(c => c.Kind == Kind.FinQueued);
            await Eventually.Holds(async () => await HeldByRelayAsync(prefix + "n1", queued) > 0,
                "the relay on n1 to have read the queued circuit's bytes and FIN, and to hold some of them", TimeSpan.FromSeconds(30),
                state: () => $"{queued}; sockets on n1: {_lastQueues}");
            _out.WriteLine($"the relay holds {await HeldByRelayAsync(prefix + "n1", queued)} bytes ahead of the queued circuit's FIN");
            var ran = DateTime.UtcNow - started;
            if (ran < TimeSpan.FromMilliseconds(800))
            {
                await Task.Delay(TimeSpan.FromMilliseconds(800) - ran); // pacing, not correctness: the streams move while frozen
            }

            var there = await HandOverAsync(script, env, node: 1);
            _out.WriteLine($"n1 -> n2: {there}");
            Assert.Equal("completed", there.GetProperty("result").GetString());
            Assert.Equal(Kinds.Length, there.GetProperty("moved").GetInt32());
            foreach (var circuit in circuits)
            {
                posted.Enqueue(circuit.AfterFirstMove);
            }

            await Task.Delay(800);
            await WaitForLogAsync(Path.Combine(state, "n2.log"), l => l.Contains("ServiceTakenOver") || l.Contains("HandoverReceived"), 1);
            var back = await HandOverAsync(script, env, node: 2, to: "198.18.0.2");
            _out.WriteLine($"n2 -> n1: {back}");
            Assert.Equal("completed", back.GetProperty("result").GetString());
            Assert.Equal(Kinds.Length, back.GetProperty("moved").GetInt32());
            // The service is back on n1: the tuples it had handed away are no longer dropped
            // there (a new upstream connection could take one of their ports), while n2 keeps
            // dropping the ones it handed back.
            Assert.Equal(0, await HandoverLab.GuardedTuplesAsync(prefix + "n1"));
            Assert.Equal(2 * 2 * Kinds.Length, await HandoverLab.GuardedTuplesAsync(prefix + "n2"));
            foreach (var circuit in circuits)
            {
                posted.Enqueue(circuit.AfterSecondMove);
            }

            await pumping.WaitAsync(Limit);
            foreach (var circuit in circuits)
            {
                Assert.True(circuit.Problem is null, circuit.Problem);
            }

            Assert.Equal(0, await ResetsAsync(prefix + "cli"));
            Assert.Equal(0, await ResetsAsync(prefix + "srv"));
        }
        finally
        {
            await stop.CancelAsync();
            if (pumping is not null)
            {
                await Task.WhenAny(pumping);
            }

            listener?.Dispose();
            foreach (var circuit in circuits)
            {
                circuit.Dispose();
            }

            foreach (var log in new[] { "n1.log", "n2.log" })
            {
                var path = Path.Combine(state, log);
                if (File.Exists(path))
                {
                    _out.WriteLine($"--- {log} (tail)\n" + string.Join('\n', File.ReadLines(path).TakeLast(30)));
                }
            }

            await RunAsync(script, ["down"], env, check: false);
        }
    }

    private static async Task<JsonElement> HandOverAsync(string script, Dictionary<string, string> env, int node, string? to = null)
    {
        var output = await RunAsync(script, to is null ? ["handover", node.ToString()] : ["handover", node.ToString(), to], env, check: false);
        using var json = JsonDocument.Parse(output);
        return json.RootElement.Clone();
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

    private static async Task<(int Id, Socket Socket)> ReadIdAsync(Socket server)
    {
        var id = new byte[4];
        for (var got = 0; got < 4;)
        {
            got += await server.ReceiveAsync(id.AsMemory(got), SocketFlags.None);
        }

        return (BitConverter.ToInt32(id), server);
    }

    /// <summary>
    /// Bytes of the queued circuit's download the relay in <paramref name="ns"/> holds in user
    /// space, once it has read all of them and the FIN (its upstream socket in close-wait with
    /// nothing unread), else 0: what the server sent, less the relay's send queue toward the
    /// client and what waits unread at the client.
    /// </summary>
    private async Task<long> HeldByRelayAsync(string ns, LabCircuit circuit)
    {
        var egressPort = ((IPEndPoint)circuit.Server.Socket.RemoteEndPoint!).Port;
        var clientPort = ((IPEndPoint)circuit.Client.Socket.LocalEndPoint!).Port;
        var upstream = await SocketQueuesAsync(ns, $"src {EgressVip}:{egressPort}");
        var client = await SocketQueuesAsync(ns, $"src {Vip}:7000 dst 198.18.0.1:{clientPort}");
        _lastQueues = $"upstream {upstream}, client {client}, unread at the client {circuit.Client.Socket.Available}";
        if (upstream is not ("CLOSE-WAIT", 0, _) || client is null)
        {
            return 0;
        }

        return Queued - client.Value.SendQueue - circuit.Client.Socket.Available;
    }

    /// <summary>State, Recv-Q and Send-Q of the one TCP socket in <paramref name="ns"/> that <paramref name="filter"/> (an ss filter) selects.</summary>
    private static async Task<(string State, long ReceiveQueue, long SendQueue)?> SocketQueuesAsync(string ns, string filter)
    {
        var output = await RunAsync("sh", ["-c", $"ip netns exec {ns} ss -Htn {filter}"], null);
        var columns = output.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return columns.Length >= 3 ? (columns[0], long.Parse(columns[1]), long.Parse(columns[2])) : null;
    }

    /// <summary>An nft counter of TCP resets arriving in <paramref name="ns"/>.</summary>
    private static Task CountResetsAsync(string ns) =>
        RunAsync("sh", ["-c", $"printf 'table inet rstmon {{\\n chain in {{\\n type filter hook input priority 0;\\n tcp flags & rst == rst counter\\n }}\\n }}\\n' | ip netns exec {ns} nft -f -"], null);

    private static async Task<long> ResetsAsync(string ns)
    {
        var listing = await RunAsync("ip", ["netns", "exec", ns, "nft", "list", "table", "inet", "rstmon"], null);
        var at = listing.IndexOf("packets ", StringComparison.Ordinal);
        return long.Parse(listing[(at + 8)..].Split(' ')[0]);
    }

    /// <summary>
    /// One circuit's two ends, each a <see cref="PatternStream"/> (after the 4 bytes of the
    /// circuit's id the client sends on connecting), set up for its <see cref="Kind"/>: how much
    /// each end sends before its FIN, how fast, and whether the client reads from the start.
    /// </summary>
    private sealed class LabCircuit : IDisposable
    {
        public LabCircuit(int id, Kind kind, Socket client, Socket server)
        {
            Id = id;
            Kind = kind;
            client.Blocking = false;
            server.Blocking = false;
            Client = new PatternStream($"circuit {id} client", client, txSeed: id, rxSeed: 100 + id);
            Server = new PatternStream($"circuit {id} server", server, txSeed: 100 + id, rxSeed: id);
            // (bytes before the FIN, rate) of each end; an end that finishes first sends unpaced.
            var (clientEnd, serverEnd) = kind switch
            {
                Kind.Stalled => ((Streaming, Rate), (Total, 0L)),
                Kind.Idle => ((0L, Rate), (0L, Rate)),
                Kind.ClientFinished => ((Short, 0L), (Streaming, Rate)),
                Kind.ServerFinished => ((Streaming, Rate), (Short, 0L)),
                Kind.FinQueued => ((Streaming, Rate), (Queued, 0L)),
                _ => ((Streaming, Rate), (Streaming, Rate)),
            };
            Configure(Client, clientEnd.Item1, clientEnd.Item2);
            Configure(Server, serverEnd.Item1, serverEnd.Item2);
            Client.Reading = kind is not (Kind.Stalled or Kind.FinQueued);
        }

        public int Id { get; }

        public Kind Kind { get; }

        public PatternStream Client { get; }

        public PatternStream Server { get; }

        /// <summary>Both ends have sent everything and their FIN, and read the other's to its FIN (or one failed).</summary>
        public bool Done => Client.Done(expectShut: true) && Server.Done(expectShut: true);

        /// <summary>Null if each end read exactly what the other sent, in order, then its FIN; else what went wrong.</summary>
        public string? Problem =>
            Client.Error is null && Server.Error is null && Client.BadAt is null && Server.BadAt is null && Client.Eof && Server.Eof
            && Client.Received == Server.Sent && Server.Received == Client.Sent
                ? null
                : $"{Kind}: {Client}; {Server}";

        /// <summary>On the pump's thread, once the circuits are on the standby: the idle ones start, the stalled clients read.</summary>
        public void AfterFirstMove()
        {
            Client.Reading = true;
            if (Kind == Kind.Idle)
            {
                Configure(Client, Streaming, Rate);
                Configure(Server, Streaming, Rate);
            }
        }

        /// <summary>On the pump's thread, once the circuits are back: each end still streaming sends a last stretch and its FIN.</summary>
        public void AfterSecondMove()
        {
            foreach (var stream in (PatternStream[])[Client, Server])
            {
                if (stream.SendLimit == Streaming)
                {
                    stream.SendLimit = stream.Sent + Tail;
                }
            }
        }

        private static void Configure(PatternStream stream, long limit, long rate)
        {
            stream.SendLimit = limit;
            stream.Rate = rate;
            stream.ShutdownAtLimit = limit > 0;
            stream.Repace();
        }

        public override string ToString() => $"{Kind}: {Client}; {Server}";

        public void Dispose()
        {
            Client.Socket.Dispose();
            Server.Socket.Dispose();
        }
    }
}
