using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors;
using Relay.Tests.Support;

namespace Relay.Tests.Circuits;

/// <summary>
/// A parked supervisor and its reader keep nothing of the circuits they served: not through
/// their own fields, nor through the Props their cells keep for life, which carry the first
/// circuit they were made for.
/// </summary>
public sealed class ParkedRetentionTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_parked_supervisor_lets_go_of_its_first_circuits_entry_and_sockets()
    {
        await using var server = new TestServer(TestServer.Echo);
        await using var relay = await RelayHarness.StartAsync(server.Endpoint, cores: 1);

        var (supervisor, entry, upstream) = await CloseOneCircuitAsync(relay);
        await Eventually.Holds(() =>
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                return !entry.IsAlive && !upstream.IsAlive;
            },
            "the closed circuit's entry and upstream socket handle to be collected", Wait,
            () => $"entry {(entry.IsAlive ? "alive" : "collected")}, upstream socket {(upstream.IsAlive ? "alive" : "collected")}");

        // It was parked, not stopped: the next circuit on the core is served by it.
        using var next = await SocketIo.ConnectAsync(relay.Listen());
        await Eventually.Holds(() => relay.Circuits.Count == 1, "the next circuit", Wait);
        Assert.Equal(supervisor, Assert.Single(relay.Circuits.Snapshot()).Supervisor);
    }

    /// <summary>One echoed circuit, closed by both FINs; only weak references to it come back.</summary>
    private static async Task<(IActorRef Supervisor, WeakReference Entry, WeakReference Upstream)> CloseOneCircuitAsync(RelayNode relay)
    {
        using var client = await SocketIo.ConnectAsync(relay.Listen());
        var request = new byte[4096];
        Random.Shared.NextBytes(request);
        await client.SendAsync(request, SocketFlags.None);
        Assert.Equal(request, await SocketIo.ReadExactlyAsync(client, request.Length).WaitAsync(Wait));
        var entry = Assert.Single(relay.Circuits.Snapshot());
        var result = (entry.Supervisor, new WeakReference(entry), new WeakReference(entry.UpstreamHandle!));
        client.Shutdown(SocketShutdown.Send);
        Assert.Equal("eof", await SocketIo.ReadUntilClosedAsync(client, Wait));
        await Eventually.Holds(() => relay.Circuits.Count == 0, "the circuit to close after both FINs", Wait);
        return result;
    }
}
