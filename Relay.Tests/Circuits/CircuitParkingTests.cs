using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors;
using Relay.Actors.Circuits;
using Relay.Tests.Support;

namespace Relay.Tests.Circuits;

/// <summary>
/// A closed circuit's supervisor (with its reader and writer) parks and serves the next circuit
/// its acceptor starts on the same core. Checked on a live one-core relay: circuits one after
/// another are served by the same actors, every byte of each still arrives, a writer kept from a
/// circuit that was reset mid-backlog serves the next one's backlog, and a message meant for a
/// supervisor's earlier circuit (an abort, a freeze) leaves the circuit it serves now alone.
/// </summary>
public sealed class CircuitParkingTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Circuits_one_after_another_are_served_by_the_same_supervisor()
    {
        await using var server = new TestServer(TestServer.Echo);
        await using var relay = await RelayHarness.StartAsync(server.Endpoint, cores: 1);

        var supervisors = new List<IActorRef>();
        var ids = new HashSet<long>();
        for (var i = 0; i < 10; i++)
        {
            var entry = await EchoOneCircuitAsync(relay);
            supervisors.Add(entry.Supervisor);
            ids.Add(entry.Id);
            // Parking takes a few messages on the core's thread after the table removal.
            await Task.Delay(200);
        }

        Assert.Equal(10, ids.Count);
        // Without parking every circuit has its own supervisor (10 distinct). With it, the first
        // one serves the rest, unless a loaded machine let a connect in before it had parked.
        Assert.True(supervisors.Distinct().Count() <= 3,
            $"10 circuits one after another had {supervisors.Distinct().Count()} supervisors: {string.Join(", ", supervisors.Select(s => s.Path.Name))}");
    }

    [Fact]
    public async Task An_abort_or_a_freeze_meant_for_an_earlier_circuit_leaves_the_current_one_alone()
    {
        await using var server = new TestServer(TestServer.Echo);
        await using var relay = await RelayHarness.StartAsync(server.Endpoint, cores: 1);
        var earlier = await EchoOneCircuitAsync(relay);

        var (current, client) = await OpenReusingAsync(relay, earlier.Supervisor);
        using (client)
        {
            var supervisor = current.Supervisor;
            supervisor.Tell(new CircuitCommands.Abort(CloseReasons.Aborted, earlier.Id));
            var answer = await supervisor.Ask<object>(replyTo => new CircuitHandoverProtocol.Freeze(replyTo, earlier), Wait, CancellationToken.None);
            var notMovable = Assert.IsType<CircuitHandoverProtocol.NotMovable>(answer);
            Assert.Same(earlier, notMovable.Entry);
            Assert.Equal("closed", notMovable.Why);
            supervisor.Tell(new CircuitHandoverProtocol.Thaw(earlier.Id));

            // The current circuit still carries bytes both ways and was never frozen or reset.
            await EchoAsync(client, 50_000);
            Assert.Equal(CircuitState.Established, current.State);
            Assert.True(relay.Circuits.TryGet(current.Id, out _));

            // An abort with its own id still ends it.
            supervisor.Tell(new CircuitCommands.Abort(CloseReasons.Aborted, current.Id));
            Assert.Equal("reset", await SocketIo.ReadUntilClosedAsync(client, Wait));
        }
    }

    [Fact]
    public async Task A_writer_kept_from_a_circuit_reset_in_mid_backlog_carries_the_next_circuits_backlog_intact()
    {
        const long total = 16L * 1024 * 1024;
        byte[]? sentHash = null;
        await using var server = new TestServer(async socket =>
        {
            sentHash = await SocketIo.SendRandomAsync(socket, total, seed: 5);
            socket.Shutdown(SocketShutdown.Send);
            await SocketIo.ReadToEndAsync(socket);
        });
        // Copying, not splicing: a spliced direction keeps its backlog in its pipe, not the writer.
        var settings = TestSettings.Circuit(writeSize: 16 * 1024, window: 64 * 1024, splice: false);
        await using var relay = await RelayHarness.StartAsync(server.Endpoint, settings, cores: 1);

        // The first client reads nothing: the relay's writer takes the backlog. Then it resets,
        // with segments still held by the writer.
        var first = await SocketIo.ConnectAsync(relay.Listen());
        CircuitEntry? earlier = null;
        await Eventually.Holds(() => relay.Circuits.Snapshot() is [var only] && (earlier = only).Counters.ReadDown - only.Counters.BytesDown > 0,
            "the relay to hold bytes the first client does not read", Wait);
        // The reader asks for its writer when a write first falls short, so the writer may
        // start a moment after the relay begins to hold bytes.
        IActorRef? writer = null;
        await Eventually.Holds(async () => (writer = await ChildAsync(relay, earlier!.Supervisor, "writer")) is not null,
            "the first circuit's writer to start", Wait);
        SocketIo.Abort(first);
        await Eventually.Holds(() => relay.Circuits.Count == 0, "the reset circuit to close", Wait);
        await Task.Delay(200);

        // The next client also falls behind at first, so the same writer holds a backlog again,
        // and then reads everything: every byte arrives, in order.
        using var second = await SocketIo.ConnectAsync(relay.Listen());
        CircuitEntry? current = null;
        await Eventually.Holds(() => relay.Circuits.Snapshot() is [var only] && (current = only).Counters.ReadDown - only.Counters.BytesDown > 0,
            "the relay to hold bytes the second client has not read yet", Wait);
        Assert.Equal(earlier!.Supervisor, current!.Supervisor);
        Assert.Equal(writer, await ChildAsync(relay, current.Supervisor, "writer"));
        var (received, hash) = await SocketIo.ReadToEndAsync(second).WaitAsync(Wait);
        second.Shutdown(SocketShutdown.Send);

        Assert.Equal(total, received);
        Assert.Equal(sentHash, hash);
        await Eventually.Holds(() => relay.Circuits.Count == 0, "the second circuit to close after both FINs", Wait);
    }

    /// <summary>
    /// Opens circuits until one is served by <paramref name="supervisor"/> (a loaded machine may
    /// let the first connect in before it has parked): that circuit's entry and client socket.
    /// </summary>
    private static async Task<(CircuitEntry Entry, Socket Client)> OpenReusingAsync(RelayNode relay, IActorRef supervisor)
    {
        for (var attempt = 0; attempt < 10; attempt++)
        {
            await Task.Delay(200);
            var client = await SocketIo.ConnectAsync(relay.Listen());
            await EchoAsync(client, 1_000);
            var entry = Assert.Single(relay.Circuits.Snapshot());
            if (entry.Supervisor.Equals(supervisor))
            {
                return (entry, client);
            }

            client.Shutdown(SocketShutdown.Send);
            await SocketIo.ReadUntilClosedAsync(client, Wait);
            client.Dispose();
            await Eventually.Holds(() => relay.Circuits.Count == 0, "the circuit to close", Wait);
        }

        throw new Xunit.Sdk.XunitException($"no circuit of 10 was served by {supervisor.Path}");
    }

    /// <summary>One circuit through the echo server: bytes there and back, then both FINs; its entry, once it has closed.</summary>
    private static async Task<CircuitEntry> EchoOneCircuitAsync(RelayNode relay)
    {
        using var client = await SocketIo.ConnectAsync(relay.Listen());
        await EchoAsync(client, 20_000);
        var entry = Assert.Single(relay.Circuits.Snapshot());
        client.Shutdown(SocketShutdown.Send);
        Assert.Equal("eof", await SocketIo.ReadUntilClosedAsync(client, Wait));
        await Eventually.Holds(() => relay.Circuits.Count == 0, "the circuit to close after both FINs", Wait);
        Assert.Equal(CircuitState.Closed, entry.State);
        return entry;
    }

    private static async Task EchoAsync(Socket client, int size)
    {
        var request = new byte[size];
        Random.Shared.NextBytes(request);
        await client.SendAsync(request, SocketFlags.None);
        var echoed = await SocketIo.ReadExactlyAsync(client, size).WaitAsync(Wait);
        Assert.Equal(request, echoed);
    }

    private static async Task<IActorRef?> ChildAsync(RelayNode relay, IActorRef supervisor, string child)
    {
        var identity = await relay.System.ActorSelection(supervisor.Path / child).Ask<ActorIdentity>(new Identify(child), Wait);
        return identity.Subject;
    }
}

/// <summary>The lot itself: per core, bounded, and closed for good when its acceptor retires.</summary>
public sealed class CircuitParkingLotTests : IDisposable
{
    private readonly ActorSystem _system = ActorSystem.Create("parking-lot-tests");

    [Fact]
    public void The_lot_gives_back_a_supervisor_of_the_asked_core_holds_at_most_its_capacity_and_nothing_once_closed()
    {
        var lot = new CircuitParking(cores: 2, capacity: 2);
        var (a, b, c) = (Dummy("a"), Dummy("b"), Dummy("c"));

        Assert.True(lot.TryPark(0, a));
        Assert.True(lot.TryPark(1, b));
        Assert.False(lot.TryPark(0, c)); // full: c stops instead
        Assert.False(lot.TryPark(2, c)); // no such core
        Assert.Null(lot.TryTake(2));
        Assert.Same(b, lot.TryTake(1));
        Assert.Null(lot.TryTake(1));
        Assert.Equal(1, lot.Count);

        Assert.True(lot.TryPark(1, c));
        Assert.Equal([a, c], lot.Close().OrderBy(r => r.Path.Name));
        Assert.Equal(0, lot.Count);
        Assert.Null(lot.TryTake(0));
        Assert.False(lot.TryPark(0, b)); // closed for good
    }

    private IActorRef Dummy(string name) => _system.ActorOf(Props.Empty, name);

    public void Dispose() => _system.Terminate().Wait(TimeSpan.FromSeconds(10));
}
