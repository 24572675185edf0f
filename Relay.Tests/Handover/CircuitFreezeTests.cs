using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors;
using Relay.Actors.Circuits;
using Relay.Actors.Listening;
using Relay.Tests.Support;

namespace Relay.Tests.Handover;

/// <summary>
/// The circuit's side of a handover, on a live relay with real sockets and no repair mode: a
/// circuit streaming both ways, with its client not reading so the relay holds bytes, is
/// frozen (no byte moves, and what it reports holding is exactly what it read and did not
/// write), then either thawed, or released and restored from the same two sockets in a new
/// supervisor. Either way every byte arrives exactly once, in order, and the circuit closes
/// normally: the handover's socket dump and restore only add the kernel's queues to this.
/// </summary>
public sealed class CircuitFreezeTests
{
    private const long Total = 24L * 1024 * 1024;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    // Four segments of the route's 16 KiB: more than a read in progress, so the writer holds
    // them, and it keeps them while the client does not read.
    private const int Backlog = 64 * 1024;

    [Fact]
    public async Task A_frozen_circuit_moves_nothing_reports_what_it_holds_and_after_a_thaw_delivers_every_byte()
    {
        await using var run = await StreamingCircuit.StartAsync();
        var frozen = await run.FreezeAsync();

        await run.AssertNothingMovesAsync(frozen);
        frozen.Entry.Supervisor.Tell(CircuitHandoverProtocol.Thaw.Instance);
        await Eventually.Holds(() => frozen.Entry.State == CircuitState.Established, "the thawed circuit to be established again");

        await run.FinishAsync(frozen.Entry);
    }

    [Fact]
    public async Task A_released_circuit_adopted_by_its_route_from_its_sockets_delivers_every_byte_and_keeps_its_identity()
    {
        await using var run = await StreamingCircuit.StartAsync();
        var frozen = await run.FreezeAsync();
        var old = frozen.Entry;

        var released = await run.AskAsync<CircuitHandoverProtocol.Released>(old.Supervisor, CircuitHandoverProtocol.Release.Instance);
        Assert.Same(old, released.Entry);
        Assert.False(run.Relay.Circuits.TryGet(old.Id, out _), "a released circuit leaves the table");
        await run.AssertNothingMovesAsync(frozen);

        var metrics = run.Relay.Metrics.ForRoute("test");
        Assert.Equal(0, metrics.Active);
        Assert.Equal(1, metrics.HandedOver);

        // What the target of a handover does with the restored sockets: its route's listener
        // adopts the circuit, with the identity and counters it had.
        var counters = old.Counters;
        var moved = new MovedCircuit(old.Id, old.Client, old.ProxiedDestination, old.Upstream, old.OpenedAt, old.Moves + 1,
            counters.BytesUp, counters.BytesDown, counters.ReadUp, counters.ReadDown, frozen.QuietMs,
            new RestoredCircuit(frozen.Client, frozen.Upstream, frozen.ToUpstream, frozen.ToClient));
        var guardian = await run.Relay.System.ActorSelection("/user/relay").ResolveOne(Wait);
        var entry = (await run.AskAsync<ListenerProtocol.CircuitAdopted>(guardian, new ListenerProtocol.AdoptCircuit("test", moved))).Entry;
        Assert.Equal(1, metrics.Active);

        await Eventually.Holds(() => run.Relay.Circuits.TryGet(old.Id, out var listed) && ReferenceEquals(listed, entry),
            "the restored circuit to be listed under its old id");
        Assert.Equal(CircuitState.Established, entry.State);
        Assert.Equal(1, entry.Moves);
        Assert.Equal(old.OpenedAt, entry.OpenedAt);

        await run.FinishAsync(entry);
        // The bytes before and after the move are counted once on the route (here both
        // "nodes" are one, so the route's total is every byte).
        await Eventually.Holds(() => metrics.Sample(0, 0) is { BytesUp: Total, BytesDown: Total },
            "the route to count every byte once", state: () => $"{metrics.Sample(0, 0)}");
    }

    /// <summary>
    /// One circuit through a relay, the server sending <see cref="Total"/> bytes down and the
    /// client <see cref="Total"/> up, both reading everything to the end, except that the
    /// client reads nothing until <see cref="ClientMayRead"/> is set: the relay then holds
    /// bytes toward the client in its writer.
    /// </summary>
    private sealed class StreamingCircuit : IAsyncDisposable
    {
        private readonly TaskCompletionSource _clientMayRead = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private TestServer _server = null!;
        private Socket _client = null!;
        private Task<byte[]> _serverSent = null!;
        private Task<(long Bytes, byte[] Hash)> _serverRead = null!;
        private Task<byte[]> _clientSent = null!;
        private Task<(long Bytes, byte[] Hash)> _clientRead = null!;

        public RelayNode Relay { get; private set; } = null!;

        public Actors.Configuration.RouteSettings Route { get; private set; } = null!;

        public static async Task<StreamingCircuit> StartAsync()
        {
            var run = new StreamingCircuit();
            var serverSent = new TaskCompletionSource<byte[]>();
            var serverRead = new TaskCompletionSource<(long, byte[])>();
            run._serverSent = serverSent.Task;
            run._serverRead = serverRead.Task;
            run._server = new TestServer(async socket =>
            {
                var reading = SocketIo.ReadToEndAsync(socket);
                serverSent.SetResult(await SocketIo.SendRandomAsync(socket, Total, seed: 31));
                socket.Shutdown(SocketShutdown.Send);
                serverRead.SetResult(await reading);
            });
            var circuit = TestSettings.Circuit(writeSize: 16 * 1024, window: 128 * 1024);
            run.Route = TestSettings.Route(run._server.Endpoint, circuit);
            run.Relay = await RelayHarness.StartAsync(TestSettings.Relay(2, run.Route));
            run._client = await SocketIo.ConnectAsync(run.Relay.Listen());
            run._clientSent = Task.Run(async () =>
            {
                var hash = await SocketIo.SendRandomAsync(run._client, Total, seed: 32);
                run._client.Shutdown(SocketShutdown.Send);
                return hash;
            });
            run._clientRead = Task.Run(async () =>
            {
                await run._clientMayRead.Task;
                return await SocketIo.ReadToEndAsync(run._client);
            });
            return run;
        }

        public void ClientMayRead() => _clientMayRead.TrySetResult();

        /// <summary>Freezes the circuit once the relay holds bytes for the client that is not reading.</summary>
        public async Task<CircuitHandoverProtocol.Frozen> FreezeAsync()
        {
            CircuitEntry? entry = null;
            await Eventually.Holds(
                () => Relay.Circuits.Snapshot() is [var only] && (entry = only).Counters.ReadDown - only.Counters.BytesDown >= Backlog,
                "the relay to hold bytes for the client that is not reading", Wait);
            var frozen = await AskAsync<CircuitHandoverProtocol.Frozen>(entry!.Supervisor, null);
            Assert.Same(entry, frozen.Entry);
            Assert.Equal(CircuitState.HandingOver, entry!.State);

            // Frozen, what the relay holds of each direction is what it read and did not write.
            var counters = entry.Counters;
            Assert.Equal(counters.ReadDown - counters.BytesDown, frozen.ToClient.Length);
            Assert.Equal(counters.ReadUp - counters.BytesUp, frozen.ToUpstream.Length);
            Assert.True(frozen.ToClient.Length > 0, "the relay holds bytes for the client that is not reading");
            return frozen;
        }

        /// <summary>Asks <paramref name="actor"/> (a freeze when <paramref name="message"/> is null) and waits for a <typeparamref name="T"/>.</summary>
        public async Task<T> AskAsync<T>(IActorRef actor, object? message)
        {
            var answer = message is null
                ? await actor.Ask<object>(replyTo => new CircuitHandoverProtocol.Freeze(replyTo), Wait, CancellationToken.None)
                : await actor.Ask<object>(message, Wait);
            return Assert.IsType<T>(answer);
        }

        /// <summary>
        /// With the client reading now, so a running relay would write to it, the frozen
        /// circuit's counters stay still: no byte is read or written.
        /// </summary>
        public async Task AssertNothingMovesAsync(CircuitHandoverProtocol.Frozen frozen)
        {
            var counters = frozen.Entry.Counters;
            var before = (counters.ReadUp, counters.ReadDown, counters.BytesUp, counters.BytesDown);
            ClientMayRead();
            await Task.Delay(TimeSpan.FromMilliseconds(500));
            Assert.Equal(before, (counters.ReadUp, counters.ReadDown, counters.BytesUp, counters.BytesDown));
        }

        /// <summary>Both streams arrive whole and in order, and the circuit closes normally with every byte counted.</summary>
        public async Task FinishAsync(CircuitEntry entry)
        {
            ClientMayRead();
            var (downBytes, downHash) = await _clientRead.WaitAsync(Wait);
            var (upBytes, upHash) = await _serverRead.WaitAsync(Wait);
            Assert.Equal(Total, downBytes);
            Assert.Equal(await _serverSent, downHash);
            Assert.Equal(Total, upBytes);
            Assert.Equal(await _clientSent, upHash);
            await Eventually.Holds(() => entry.State == CircuitState.Closed, "the circuit to close after both FINs", Wait);
            Assert.Equal(Total, entry.Counters.BytesUp);
            Assert.Equal(Total, entry.Counters.BytesDown);
            Assert.Empty(_server.Failures);
        }

        public async ValueTask DisposeAsync()
        {
            _clientMayRead.TrySetResult();
            _client?.Dispose();
            await Relay.DisposeAsync();
            await _server.DisposeAsync();
        }
    }
}
