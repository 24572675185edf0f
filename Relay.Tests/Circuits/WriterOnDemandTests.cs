using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors;
using Relay.Tests.Support;

namespace Relay.Tests.Circuits;

/// <summary>
/// A circuit's reader writes inline while both destinations keep up, and its writer child is
/// started only when one falls behind. Both halves of that are checked on the live actor tree:
/// no writer while nothing waits, a writer once a client stops reading, and through the
/// switch from inline writes to the writer's backlog and back every byte arrives, in order.
/// </summary>
public sealed class WriterOnDemandTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_circuit_whose_destinations_keep_up_runs_without_a_writer()
    {
        await using var server = new TestServer(TestServer.Echo);
        await using var relay = await RelayHarness.StartAsync(server.Endpoint);
        using var client = await SocketIo.ConnectAsync(relay.Listen());

        var request = new byte[10_000];
        Random.Shared.NextBytes(request);
        await client.SendAsync(request, SocketFlags.None);
        var echoed = new byte[request.Length];
        for (var got = 0; got < echoed.Length;)
        {
            got += await client.ReceiveAsync(echoed.AsMemory(got), SocketFlags.None).AsTask().WaitAsync(Wait);
        }

        Assert.Equal(request, echoed);
        // The lookup finds the circuit's reader, so it would find a writer too.
        Assert.NotNull(await ChildOfTheCircuit(relay, "reader"));
        Assert.Null(await ChildOfTheCircuit(relay, "writer"));
    }

    [Fact]
    public async Task A_client_that_stops_reading_gets_the_circuit_a_writer_and_still_every_byte_in_order()
    {
        const long total = 48L * 1024 * 1024;
        byte[]? sentHash = null;
        await using var server = new TestServer(async socket =>
        {
            sentHash = await SocketIo.SendRandomAsync(socket, total, seed: 11);
            socket.Shutdown(SocketShutdown.Send);
            await SocketIo.ReadToEndAsync(socket);
        });
        // Copying, not splicing: a spliced direction keeps its backlog in its pipe, not the writer.
        var circuit = TestSettings.Circuit(writeSize: 16 * 1024, window: 64 * 1024, splice: false);
        await using var relay = await RelayHarness.StartAsync(server.Endpoint, circuit);
        using var client = await SocketIo.ConnectAsync(relay.Listen());

        // The client reads nothing until the relay has had to start the writer: its socket's
        // buffer fills, the reader's inline send would block, and the backlog goes to the writer.
        await Eventually.Holds(() => ChildOfTheCircuit(relay, "writer").Result is not null,
            "the circuit to start its writer for the client that is not reading", Wait);

        var (received, hash) = await SocketIo.ReadToEndAsync(client).WaitAsync(Wait);
        client.Shutdown(SocketShutdown.Send);

        Assert.Equal(total, received);
        Assert.Equal(sentHash, hash);
        await server.DrainAsync(Wait);
        Assert.Empty(server.Failures);
        await Eventually.Holds(() => relay.Circuits.Count == 0, "the circuit to close after both FINs");
    }

    /// <summary>The named child of the route's one circuit, or null when it has none.</summary>
    private static async Task<IActorRef?> ChildOfTheCircuit(RelayNode relay, string child)
    {
        // The circuit's entry names its supervisor; a selection of the child by its exact path
        // answers "none" too.
        var circuits = relay.Circuits.Snapshot();
        if (circuits.Count == 0)
        {
            return null; // not accepted yet
        }

        var circuit = Assert.Single(circuits).Supervisor;
        Assert.False(circuit.IsNobody(), "the circuit's entry names its supervisor");
        var identity = await relay.System.ActorSelection(circuit.Path / child)
            .Ask<ActorIdentity>(new Identify(child), TimeSpan.FromSeconds(5));
        return identity.Subject;
    }
}
