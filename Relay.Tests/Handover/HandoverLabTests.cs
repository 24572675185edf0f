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
/// server side. Circuits stream a verifiable pattern both ways through the VIP, some paced,
/// some idle until the end, one whose client does not read (so the relay's and the kernel's
/// queues are full when it moves). The owner hands them to the standby, and the standby hands
/// them back; every byte must arrive exactly once and in order, no reset may reach the client
/// or the server (an nft counter in each namespace), and every circuit closes with its FINs.
/// </summary>
public sealed class HandoverLabTests
{
    private const string Vip = "198.18.0.10";
    private const string Server = "198.18.1.100";
    private const int Circuits = 12;
    private const int Total = 4 * 1024 * 1024;

    private readonly ITestOutputHelper _out;

    public HandoverLabTests(ITestOutputHelper output) => _out = output;

    [RootLabFact]
    public async Task Circuits_streaming_both_ways_move_to_the_standby_and_back_with_every_byte_and_no_reset()
    {
        var script = FindInRepo("ops/cluster/cluster.sh");
        var prefix = $"rho{Environment.ProcessId % 100000}x{Random.Shared.Next(1000, 9999)}-";
        var state = Path.Combine(Path.GetTempPath(), prefix + "cluster");
        // The test's own streams load a 2-core machine: a longer heartbeat pause than the shipped
        // 600 ms keeps a busy moment from downing a node, which is not what this test is about.
        var env = new Dictionary<string, string> { ["LAB_PREFIX"] = prefix, ["PUBLISH"] = "250ms", ["HEARTBEAT_PAUSE"] = "3s" };
        Socket? listener = null;
        var streams = new List<PatternStream>();
        try
        {
            await RunAsync(script, ["up", "--egress"], env);
            await CountResetsAsync(prefix + "cli");
            await CountResetsAsync(prefix + "srv");
            listener = NetworkNamespace.Run(prefix + "srv", () =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                socket.Bind(new IPEndPoint(IPAddress.Parse(Server), 9000));
                socket.Listen(64);
                return socket;
            });
            var serverSides = AcceptAsync(listener, Circuits);

            await RunAsync(script, ["start", "1"], env);
            await WaitForLogAsync(Path.Combine(state, "n1.log"), l => l.Contains("ServiceTakenOver"), 1);
            await RunAsync(script, ["start", "2"], env);
            await WaitForLogAsync(Path.Combine(state, "n2.log"), l => l.Contains("MemberUp"), 2);

            for (var i = 0; i < Circuits; i++)
            {
                var client = NetworkNamespace.Run(prefix + "cli", () =>
                {
                    var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    socket.Connect(new IPEndPoint(IPAddress.Parse(Vip), 7000));
                    socket.Send(BitConverter.GetBytes(i));
                    return socket;
                });
                streams.Add(new PatternStream(i, client));
            }

            var servers = await serverSides.WaitAsync(TimeSpan.FromSeconds(30));
            // Match each server-side socket to its circuit by the id its client sends first.
            var byId = await Task.WhenAll(servers.Select(PatternStream.ReadIdAsync));
            foreach (var (id, socket) in byId)
            {
                streams[id].Server = socket;
            }

            // Circuit 0's client reads nothing until after the first handover; circuits 1-2 send
            // nothing until then (idle when they move); the rest stream at a paced rate.
            var firstMove = new TaskCompletionSource();
            var running = streams.Select(s => s.RunAsync(firstMove.Task)).ToList();

            await Task.Delay(800);
            var there = await HandOverAsync(script, env, node: 1);
            _out.WriteLine($"n1 -> n2: {there}");
            Assert.Equal("completed", there.GetProperty("result").GetString());
            Assert.Equal(Circuits, there.GetProperty("moved").GetInt32());
            firstMove.SetResult();

            await Task.Delay(800);
            await WaitForLogAsync(Path.Combine(state, "n2.log"), l => l.Contains("ServiceTakenOver") || l.Contains("HandoverReceived"), 1);
            var back = await HandOverAsync(script, env, node: 2, to: "198.18.0.2");
            _out.WriteLine($"n2 -> n1: {back}");
            Assert.Equal("completed", back.GetProperty("result").GetString());
            Assert.Equal(Circuits, back.GetProperty("moved").GetInt32());

            await Task.WhenAll(running).WaitAsync(TimeSpan.FromSeconds(60));
            foreach (var stream in streams)
            {
                Assert.True(stream.Problem is null, $"circuit {stream.Id}: {stream.Problem}");
            }

            Assert.Equal(0, await ResetsAsync(prefix + "cli"));
            Assert.Equal(0, await ResetsAsync(prefix + "srv"));
        }
        finally
        {
            listener?.Dispose();
            foreach (var stream in streams)
            {
                stream.Dispose();
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
    /// One circuit's two ends: each sends <see cref="Total"/> bytes of a pattern (after the
    /// 4 bytes of the circuit's id the client sends on connecting), then its FIN, and reads the other's to the end, checking
    /// every byte's value at its offset: a lost, repeated or reordered byte is caught where it happens.
    /// </summary>
    private sealed class PatternStream(int id, Socket client) : IDisposable
    {
        public int Id { get; } = id;

        public Socket Client { get; } = client;

        public Socket? Server { get; set; }

        public string? Problem { get; private set; }

        private static byte At(int seed, long offset) => (byte)((offset * 7 + seed) % 251);

        public static async Task<(int Id, Socket Socket)> ReadIdAsync(Socket server)
        {
            var id = new byte[4];
            for (var got = 0; got < 4;)
            {
                got += await server.ReceiveAsync(id.AsMemory(got), SocketFlags.None);
            }

            return (BitConverter.ToInt32(id), server);
        }

        public async Task RunAsync(Task firstMove)
        {
            try
            {
                // Paced, so no direction has ended (a half-closed circuit is not moved yet) when
                // the circuits move.
                var paced = true;
                var idle = Id is 1 or 2;
                var stalled = Id == 0;
                await Task.WhenAll(
                    SendAsync(Client, seed: Id, paced, idle ? firstMove : Task.CompletedTask),
                    SendAsync(Server!, seed: 100 + Id, paced, idle ? firstMove : Task.CompletedTask),
                    ReadAsync(Server!, seed: Id, "server"),
                    ReadAsync(Client, seed: 100 + Id, "client", stalled ? firstMove : Task.CompletedTask));
            }
            catch (Exception e)
            {
                Problem ??= e.Message;
            }
        }

        private static async Task SendAsync(Socket socket, int seed, bool paced, Task start)
        {
            await start;
            var chunk = new byte[16 * 1024];
            for (long sent = 0; sent < Total;)
            {
                var n = (int)Math.Min(chunk.Length, Total - sent);
                for (var i = 0; i < n; i++)
                {
                    chunk[i] = At(seed, sent + i);
                }

                await socket.SendAsync(chunk.AsMemory(0, n), SocketFlags.None);
                sent += n;
                if (paced)
                {
                    await Task.Delay(20); // under 0.8 MB/s: the stream spans both handovers
                }
            }

            socket.Shutdown(SocketShutdown.Send);
        }

        private async Task ReadAsync(Socket socket, int seed, string side, Task? start = null)
        {
            if (start is not null)
            {
                await start;
            }

            var buffer = new byte[64 * 1024];
            long got = 0;
            while (true)
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None);
                if (n == 0)
                {
                    break;
                }

                for (var i = 0; i < n; i++)
                {
                    if (buffer[i] != At(seed, got + i))
                    {
                        throw new InvalidDataException($"the {side} read a wrong byte at offset {got + i}");
                    }
                }

                got += n;
            }

            if (got != Total)
            {
                throw new InvalidDataException($"the {side} read {got} bytes before the FIN, not {Total}");
            }
        }

        public void Dispose()
        {
            Client.Dispose();
            Server?.Dispose();
        }
    }
}
