using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Relay.Tests.Native;
using Relay.Tests.Support;
using Xunit.Abstractions;
using static Relay.Tests.Cluster.ClusterLab;

namespace Relay.Tests.Handover;

/// <summary>
/// The service coming back to a node by a failover rather than a handover (root,
/// <see cref="HandoverLab"/>): n1 hands its circuits to n2, n2 dies, and n1 takes the service
/// over once n2 is downed. Since the handover n1 has dropped the handed-away circuits' 4-tuples
/// (the guard, for <c>guard-timeout</c>, 60 s); those circuits died with n2, and n1 must lift
/// the guard as it takes over. Each end of each such circuit then sends, and must get a reset
/// from n1 at once (with the guard left, its segments vanish and it retransmits until its own
/// timeout); n1's guard set must be empty; and a new connection from the port of one of those
/// clients must connect (with the guard left, its SYN is dropped).
/// </summary>
/// <remarks>
/// n2 dies as a host does: its links go down, then its process gets SIGKILL. A process killed
/// on a host that lives on has its kernel close its sockets, with a FIN or a reset to each
/// peer, and the peers would learn of the end from n2 rather than from n1.
/// </remarks>
public sealed class FailoverAfterHandoverLabTests(ITestOutputHelper output)
{
    private const int Circuits = 4;
    private const string ClientAddress = "198.18.0.1";

    // A reset comes back within a round trip of the first segment that reaches n1. A segment
    // sent before the client's or server's neighbour entry has moved to n1 (n1's gratuitous ARP
    // at the take-over) is lost and retransmitted after 0.2, 0.6, 1.4, 3 s...: 10 s leaves room
    // for a loaded machine, and is far less than what is left of the 60 s guard.
    private static readonly TimeSpan ResetWithin = TimeSpan.FromSeconds(10);

    [RootLabFact]
    public async Task The_old_owner_taking_the_service_back_by_failover_lifts_its_guard_and_resets_the_dead_circuits_at_once()
    {
        await using var lab = await HandoverLab.UpAsync("rhguard", output);
        await lab.StartPairAsync();
        var circuits = await lab.OpenCircuitsAsync(Circuits);
        try
        {
            var (exit, outcome) = await lab.HandOverAsync(1);
            Assert.Equal(0, exit);
            Assert.Equal(Circuits, outcome.GetProperty("moved").GetInt32());
            foreach (var circuit in circuits)
            {
                await RoundTripAsync(circuit);
            }

            // Both sockets of every circuit, each tuple both ways.
            Assert.Equal(2 * 2 * Circuits, await HandoverLab.GuardedTuplesAsync(lab.Prefix + "n1"));

            foreach (var device in new[] { "eth0", "eth1" })
            {
                await RunAsync("ip", ["-n", lab.Prefix + "n2", "link", "set", device, "down"], null);
            }

            await lab.ClusterAsync("kill", "2", "KILL");
            var clock = Stopwatch.StartNew();
            // Its first take-over was at start; this is the second.
            await lab.WaitForLogAsync(1, l => l.Contains("ServiceTakenOver"), 2);
            output.WriteLine($"n1 took the service over {clock.ElapsedMilliseconds} ms after the kill");

            var ends = circuits.SelectMany(c => (PatternStream[])[c.Client, c.Server]).ToList();
            var answers = await Task.WhenAll(ends.Select(end => SendUntilResetAsync(end.Socket)));
            for (var i = 0; i < ends.Count; i++)
            {
                output.WriteLine($"{ends[i].Name}: {answers[i].What} after {answers[i].Ms} ms");
            }

            Assert.All(Enumerable.Range(0, ends.Count), i => Assert.True(answers[i].What == "reset",
                $"{ends[i].Name} sent on a circuit that died with n2 and got {answers[i].What}, not a reset from n1"));
            output.WriteLine($"resets arriving at the client and the server: {await lab.ResetsAsync()}");
            Assert.Equal(0, await HandoverLab.GuardedTuplesAsync(lab.Prefix + "n1"));

            // A new connection takes the port of a client of those circuits, its socket closed
            // without a FIN (lingering 0), so that nothing of the old connection is left to refuse the bind.
            var port = ((IPEndPoint)circuits[0].Client.Socket.LocalEndPoint!).Port;
            circuits[0].Client.Socket.LingerState = new LingerOption(true, 0);
            circuits[0].Dispose();
            using var again = NetworkNamespace.Run(lab.Prefix + "cli", () =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                socket.Bind(new IPEndPoint(IPAddress.Parse(ClientAddress), port));
                return socket;
            });
            using var connecting = new CancellationTokenSource(ResetWithin);
            try
            {
                await again.ConnectAsync(new IPEndPoint(IPAddress.Parse(HandoverLab.Vip), 7000), connecting.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"a new connection from {ClientAddress}:{port}, the port of a circuit handed away, did not connect to n1 within {ResetWithin.TotalSeconds:0} s");
            }
        }
        finally
        {
            foreach (var circuit in circuits)
            {
                circuit.Dispose();
            }
        }
    }

    /// <summary>A few bytes each way through the circuit, which must arrive.</summary>
    private static async Task RoundTripAsync(LabCircuit circuit)
    {
        foreach (var (from, to) in new[] { (circuit.Client, circuit.Server), (circuit.Server, circuit.Client) })
        {
            byte[] sent = [1, 2, 3, (byte)circuit.Id];
            await from.Socket.SendAsync(sent, SocketFlags.None);
            var received = new byte[sent.Length];
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            for (var got = 0; got < received.Length;)
            {
                var read = await to.Socket.ReceiveAsync(received.AsMemory(got), SocketFlags.None, deadline.Token);
                Assert.True(read > 0, $"{to.Name}: end of stream before the bytes {from.Name} sent");
                got += read;
            }

            Assert.Equal(sent, received);
        }
    }

    /// <summary>Sends four bytes and reads: "reset" if the connection is reset within <see cref="ResetWithin"/>, else what happened instead.</summary>
    private static async Task<(string What, long Ms)> SendUntilResetAsync(Socket socket)
    {
        var clock = Stopwatch.StartNew();
        using var deadline = new CancellationTokenSource(ResetWithin);
        try
        {
            await socket.SendAsync(new byte[] { 9, 9, 9, 9 }, SocketFlags.None, deadline.Token);
            var read = await socket.ReceiveAsync(new byte[64], SocketFlags.None, deadline.Token);
            return (read == 0 ? "end of stream" : $"{read} bytes", clock.ElapsedMilliseconds);
        }
        catch (SocketException e)
        {
            return (e.SocketErrorCode == SocketError.ConnectionReset ? "reset" : e.SocketErrorCode.ToString(), clock.ElapsedMilliseconds);
        }
        catch (OperationCanceledException)
        {
            return ($"nothing within {ResetWithin.TotalSeconds:0} s", clock.ElapsedMilliseconds);
        }
    }
}
