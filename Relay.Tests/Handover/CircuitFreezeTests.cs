using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Akka.Actor;
using Relay.Actors;
using Relay.Actors.Circuits;
using Relay.Actors.Configuration;
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

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_frozen_circuit_moves_nothing_reports_what_it_holds_and_after_a_thaw_delivers_every_byte(bool splice)
    {
        await using var run = await StreamingCircuit.StartAsync(splice);
        var frozen = await run.FreezeAsync();

        await run.AssertNothingMovesAsync(frozen);
        frozen.Entry.Supervisor.Tell(new CircuitHandoverProtocol.Thaw(frozen.Entry.Id));
        // Back to the phase it froze from: established, or half-closed if the client's upload
        // had finished by then (the upload runs at loopback speed).
        await Eventually.Holds(() => frozen.Entry.State != CircuitState.HandingOver, "the thawed circuit to run again");

        await run.FinishAsync(frozen.Entry);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_released_circuit_adopted_by_its_route_from_its_sockets_delivers_every_byte_and_keeps_its_identity(bool splice)
    {
        await using var run = await StreamingCircuit.StartAsync(splice);
        var frozen = await run.FreezeAsync();
        var old = frozen.Entry;

        await ReleaseAsync(run.Relay, frozen);
        await run.AssertNothingMovesAsync(frozen);

        var metrics = run.Relay.Metrics.ForRoute("test");
        Assert.Equal(0, metrics.Active);
        Assert.Equal(1, metrics.HandedOver);

        var entry = await AdoptAsync(run.Relay, frozen);
        Assert.Equal(1, metrics.Active);
        // Running again in the phase it froze in: established, or half-closed if the client's
        // upload (at loopback speed) had finished by then, as a spliced circuit's freeze,
        // retried until its pipe holds bytes, gives it time to.
        Assert.Contains(entry.State, (CircuitState[])[CircuitState.Established, CircuitState.HalfClosed]);
        Assert.Equal(1, entry.Moves);
        Assert.Equal(old.OpenedAt, entry.OpenedAt);

        await run.FinishAsync(entry);
        // The bytes before and after the move are counted once on the route (here both
        // "nodes" are one, so the route's total is every byte).
        await Eventually.Holds(() => metrics.Sample(0, 0) is { BytesUp: Total, BytesDown: Total },
            "the route to count every byte once", state: () => $"{metrics.Sample(0, 0)}");
    }

    /// <summary>
    /// A client that has sent everything and its FIN (carried upstream: the circuit is
    /// half-closed) while the server still streams: frozen, it reports its up direction over and
    /// its down direction open, and restored from its sockets it starts half-closed, reads
    /// nothing more from the client, and carries the rest of the server's stream and its FIN.
    /// </summary>
    [Fact]
    public async Task A_circuit_whose_client_has_finished_moves_half_closed_and_carries_the_rest_of_the_download()
    {
        await using var run = await HalfClosedDownload.StartAsync(circuit: null, seed: 41);
        var (uploaded, uploadHash) = run.Uploaded;
        Assert.Equal(HalfClosedDownload.Upload, uploaded);
        Assert.Equal(run.ClientSent, uploadHash);
        var old = run.Entry;

        var frozen = await FreezeAsync(old);
        Assert.Equal((DirectionEnd.FinCarried, DirectionEnd.Open), (frozen.Up, frozen.Down));
        Assert.Empty(frozen.ToUpstream);
        await ReleaseAsync(run.Relay, frozen);

        var entry = await AdoptAsync(run.Relay, frozen);
        Assert.Equal(CircuitState.HalfClosed, entry.State);
        var ((downloaded, downloadHash), serverSent) = await run.FinishAsync();
        Assert.Equal(Total, downloaded);
        Assert.Equal(serverSent, downloadHash);
        await Eventually.Holds(() => entry.State == CircuitState.Closed, "the circuit to close after the server's FIN", Wait);
        Assert.Equal((HalfClosedDownload.Upload, Total), (entry.Counters.BytesUp, entry.Counters.BytesDown));
        AssertClosedComplete(run.Relay);
    }

    /// <summary>
    /// A handover that rolls back thaws a circuit where it stood: one whose client had finished
    /// (its FIN carried to the server) is half-closed again, carries the rest of the download,
    /// and closes complete when the server finishes, with its upload's end reported once. A
    /// rolled-back handover under heavy load once failed circuits with "Up finished twice".
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_half_closed_circuit_thawed_after_a_rollback_finishes_its_download_and_closes_complete(bool splice)
    {
        await using var run = await HalfClosedDownload.StartAsync(TestSettings.Circuit(splice: splice), seed: 51);
        var entry = run.Entry;

        // Twice, as a handover rolled back twice does.
        for (var rollback = 0; rollback < 2; rollback++)
        {
            var frozen = await FreezeAsync(entry);
            Assert.Equal(DirectionEnd.FinCarried, frozen.Up);
            entry.Supervisor.Tell(new CircuitHandoverProtocol.Thaw(entry.Id));
            await Eventually.Holds(() => entry.State == CircuitState.HalfClosed, "the thawed circuit half-closed again");
        }

        var ((downloaded, downloadHash), serverSent) = await run.FinishAsync();
        Assert.Equal(Total, downloaded);
        Assert.Equal(serverSent, downloadHash);
        await Eventually.Holds(() => entry.State == CircuitState.Closed, "the circuit to close after the server's FIN", Wait);
        AssertClosedComplete(run.Relay);
    }

    /// <summary>
    /// A circuit whose client uploaded <see cref="Upload"/> bytes and finished (the circuit is
    /// half-closed once this returns), while the server sends half of a <see cref="Total"/>-byte
    /// download and waits for <see cref="FinishAsync"/> to send the rest and its FIN.
    /// </summary>
    private sealed class HalfClosedDownload : IAsyncDisposable
    {
        public const long Upload = 64 * 1024;

        private readonly TaskCompletionSource _serverMayFinish = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource<byte[]> _serverSent = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private TestServer _server = null!;
        private Socket _client = null!;
        private Task<(long, byte[])> _clientRead = null!;

        public RelayNode Relay { get; private set; } = null!;

        /// <summary>The hash of what the client sent.</summary>
        public byte[] ClientSent { get; private set; } = [];

        /// <summary>What the server read of the upload, and its hash.</summary>
        public (long Bytes, byte[] Hash) Uploaded { get; private set; }

        /// <summary>The circuit, half-closed.</summary>
        public CircuitEntry Entry { get; private set; } = null!;

        /// <param name="seed">The first half of the download's seed; the second half uses seed + 1, the upload seed + 2.</param>
        public static async Task<HalfClosedDownload> StartAsync(CircuitSettings? circuit, int seed)
        {
            var run = new HalfClosedDownload();
            var serverRead = new TaskCompletionSource<(long, byte[])>(TaskCreationOptions.RunContinuationsAsynchronously);
            run._server = new TestServer(async socket =>
            {
                serverRead.SetResult(await SocketIo.ReadToEndAsync(socket));
                // Half of the download before the freeze, half after.
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                await SendPartAsync(socket, hash, Total / 2, seed);
                await run._serverMayFinish.Task;
                await SendPartAsync(socket, hash, Total / 2, seed + 1);
                run._serverSent.SetResult(hash.GetHashAndReset());
                socket.Shutdown(SocketShutdown.Send);
            });
            run.Relay = await RelayHarness.StartAsync(TestSettings.Relay(2, TestSettings.Route(run._server.Endpoint, circuit)));
            run._client = await SocketIo.ConnectAsync(run.Relay.Listen());
            run.ClientSent = await SocketIo.SendRandomAsync(run._client, Upload, seed: seed + 2);
            run._client.Shutdown(SocketShutdown.Send);
            run._clientRead = SocketIo.ReadToEndAsync(run._client);

            run.Uploaded = await serverRead.Task.WaitAsync(Wait);
            run.Entry = Assert.Single(run.Relay.Circuits.Snapshot());
            var entry = run.Entry;
            await Eventually.Holds(() => entry.State == CircuitState.HalfClosed, "the client's FIN to half-close the circuit");
            return run;
        }

        /// <summary>Lets the server send the rest and its FIN: what the client read (bytes, hash), and the hash of what the server sent.</summary>
        public async Task<((long Bytes, byte[] Hash) Downloaded, byte[] ServerSent)> FinishAsync()
        {
            _serverMayFinish.SetResult();
            var downloaded = await _clientRead.WaitAsync(Wait);
            return (downloaded, await _serverSent.Task);
        }

        public async ValueTask DisposeAsync()
        {
            _client?.Dispose();
            if (Relay is not null)
            {
                await Relay.DisposeAsync();
            }

            if (_server is not null)
            {
                await _server.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// The server's bytes and FIN are all read by the relay, but the client reads nothing, so
    /// the relay holds the last of them: frozen, the circuit reports the FIN owed behind the
    /// bytes it holds, and restored it writes them and then the FIN. The client then finishes
    /// its upload and the circuit closes normally.
    /// </summary>
    [Fact]
    public async Task A_FIN_owed_behind_bytes_the_relay_holds_moves_with_the_circuit_and_follows_them()
    {
        // Small buffers toward the client (no autotuning), a window larger than what the
        // server sends: the relay reads all of it and the FIN, and holds what the client's
        // kernel cannot take.
        const int download = 96 * 1024;
        const long upload = 64 * 1024;
        var serverSent = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = new TestServer(async socket =>
        {
            serverSent.SetResult(await SocketIo.SendRandomAsync(socket, download, seed: 51, chunk: 16 * 1024));
            socket.Shutdown(SocketShutdown.Send);
            await SocketIo.ReadToEndAsync(socket);
        });
        // Copying: the FIN owed behind held bytes is the copy path's (a spliced direction reads
        // its EOF only with its pipe empty).
        var circuit = TestSettings.Circuit(writeSize: 16 * 1024, window: 256 * 1024, splice: false) with
        {
            ClientSide = TestSettings.Side with { SendBuffer = 8 * 1024 },
        };
        await using var relay = await RelayHarness.StartAsync(TestSettings.Relay(2, TestSettings.Route(server.Endpoint, circuit)));
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4 * 1024 };
        await client.ConnectAsync(relay.Listen());
        CircuitEntry old = null!;
        await Eventually.Holds(() => relay.Circuits.Snapshot() is [var only] && (old = only) is not null, "the circuit to be listed");
        await Eventually.Holds(() => old.Counters.ReadDown == download && old.Counters.ReadDown > old.Counters.BytesDown,
            "the relay to read the whole download and hold part of it", Wait, state: () => $"read {old.Counters.ReadDown}, written {old.Counters.BytesDown}");

        // The FIN follows the last bytes into the relay at once, but the reader may not have
        // read it yet: thaw and freeze again until it has (bounded).
        CircuitHandoverProtocol.Frozen? frozen = null;
        for (var attempt = 0; attempt < 50 && frozen?.Down != DirectionEnd.FinOwed; attempt++)
        {
            if (frozen is not null)
            {
                old.Supervisor.Tell(new CircuitHandoverProtocol.Thaw(old.Id));
                await Eventually.Holds(() => old.State == CircuitState.Established, "the thawed circuit to run again");
                await Task.Delay(20);
            }

            frozen = await FreezeAsync(old);
        }

        Assert.Equal((DirectionEnd.Open, DirectionEnd.FinOwed), (frozen!.Up, frozen.Down));
        Assert.Equal(old.Counters.ReadDown - old.Counters.BytesDown, frozen.ToClient.Length);
        Assert.True(frozen.ToClient.Length > 0, "the relay holds bytes ahead of the FIN");
        await ReleaseAsync(relay, frozen);

        var entry = await AdoptAsync(relay, frozen);
        Assert.Equal(CircuitState.Established, entry.State);
        var (downloaded, downloadHash) = await SocketIo.ReadToEndAsync(client).WaitAsync(Wait);
        Assert.Equal(download, downloaded);
        Assert.Equal(await serverSent.Task, downloadHash);
        await Eventually.Holds(() => entry.State == CircuitState.HalfClosed, "the FIN carried after the bytes to half-close the circuit");

        await SocketIo.SendRandomAsync(client, upload, seed: 52);
        client.Shutdown(SocketShutdown.Send);
        await Eventually.Holds(() => entry.State == CircuitState.Closed, "the circuit to close after the client's FIN", Wait);
        Assert.Equal((upload, (long)download), (entry.Counters.BytesUp, entry.Counters.BytesDown));
        AssertClosedComplete(relay);
        Assert.Empty(server.Failures);
    }

    /// <summary>The route's one closed circuit ended with both FINs, not a reset or a timeout.</summary>
    private static void AssertClosedComplete(RelayNode relay)
    {
        var closed = relay.Metrics.ForRoute("test").Sample(0, 0).ClosedByReason.Where(r => r.Value > 0).ToList();
        Assert.Equal([new KeyValuePair<string, long>(CloseReasons.Complete, 1)], closed);
    }

    /// <summary>
    /// A half-closed circuit's half-closed timeout goes on across the move: restored after
    /// most of it has passed quietly on the old node, it ends soon after, not a whole timeout later.
    /// </summary>
    [Fact]
    public async Task A_moved_half_closed_circuit_keeps_the_time_its_half_closed_timeout_had_run()
    {
        var timeout = TimeSpan.FromSeconds(2);
        var serverDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = new TestServer(async socket =>
        {
            await SocketIo.ReadToEndAsync(socket);
            await serverDone.Task; // quiet: it neither sends nor closes
        });
        var circuit = TestSettings.Circuit(halfClosedTimeout: timeout);
        await using var relay = await RelayHarness.StartAsync(TestSettings.Relay(2, TestSettings.Route(server.Endpoint, circuit)));
        try
        {
            using var client = await SocketIo.ConnectAsync(relay.Listen());
            await SocketIo.SendRandomAsync(client, 16 * 1024, seed: 61);
            client.Shutdown(SocketShutdown.Send);
            CircuitEntry old = null!;
            await Eventually.Holds(() => relay.Circuits.Snapshot() is [var only] && (old = only).State == CircuitState.HalfClosed,
                "the client's FIN to half-close the circuit");
            var halfClosed = Stopwatch.StartNew();

            // Three quarters of the timeout pass on the old node (the time is what is tested).
            await Task.Delay(timeout * 0.75);
            var frozen = await FreezeAsync(old);
            Assert.True(frozen.QuietMs >= timeout.TotalMilliseconds * 0.7, $"quiet {frozen.QuietMs} ms when frozen");
            await ReleaseAsync(relay, frozen);
            var entry = await AdoptAsync(relay, frozen);
            var adopted = Stopwatch.StartNew();

            await Eventually.Holds(() => entry.State == CircuitState.Closed, "the half-closed timeout to end the moved circuit", timeout * 3);
            Assert.True(adopted.Elapsed < timeout * 0.75,
                $"closed {adopted.Elapsed.TotalMilliseconds:0} ms after the move, {halfClosed.Elapsed.TotalMilliseconds:0} ms after the half-close");
            var closed = relay.Metrics.ForRoute("test").Sample(0, 0).ClosedByReason.Where(r => r.Value > 0).ToList();
            Assert.Equal([new KeyValuePair<string, long>(CloseReasons.HalfClosedTimeout, 1)], closed);
        }
        finally
        {
            serverDone.TrySetResult();
        }
    }

    private static async Task SendPartAsync(Socket socket, IncrementalHash hash, long count, int seed)
    {
        var random = new Random(seed);
        var buffer = new byte[64 * 1024];
        for (var left = count; left > 0;)
        {
            var n = (int)Math.Min(buffer.Length, left);
            random.NextBytes(buffer.AsSpan(0, n));
            hash.AppendData(buffer, 0, n);
            await socket.SendAsync(buffer.AsMemory(0, n), SocketFlags.None);
            left -= n;
        }
    }

    /// <summary>Asks <paramref name="actor"/> and waits for a <typeparamref name="T"/>.</summary>
    private static async Task<T> AskAsync<T>(IActorRef actor, object message) => Assert.IsType<T>(await actor.Ask<object>(message, Wait));

    /// <summary>Asks the circuit of <paramref name="entry"/> to freeze, and waits for it to answer <see cref="CircuitHandoverProtocol.Frozen"/>.</summary>
    private static async Task<CircuitHandoverProtocol.Frozen> FreezeAsync(CircuitEntry entry) =>
        Assert.IsType<CircuitHandoverProtocol.Frozen>(
            await entry.Supervisor.Ask<object>(replyTo => new CircuitHandoverProtocol.Freeze(replyTo, entry), Wait, CancellationToken.None));

    /// <summary>What the old node does once the target holds the circuit: the supervisor lets go of it and stops.</summary>
    private static async Task ReleaseAsync(RelayNode relay, CircuitHandoverProtocol.Frozen frozen)
    {
        var released = await AskAsync<CircuitHandoverProtocol.Released>(frozen.Entry.Supervisor, new CircuitHandoverProtocol.Release(frozen.Entry.Id));
        Assert.Same(frozen.Entry, released.Entry);
        Assert.False(relay.Circuits.TryGet(frozen.Entry.Id, out _), "a released circuit leaves the table");
    }

    /// <summary>
    /// What the target of a handover does with the restored sockets: its route's listener adopts
    /// the circuit, with the identity, counters and direction ends it had. Returns its new entry,
    /// listed under the old id.
    /// </summary>
    private static async Task<CircuitEntry> AdoptAsync(RelayNode relay, CircuitHandoverProtocol.Frozen frozen)
    {
        var old = frozen.Entry;
        var counters = old.Counters;
        var moved = new MovedCircuit(old.Id, old.Client, old.ProxiedDestination, old.Upstream, old.OpenedAt, old.Moves + 1,
            counters.BytesUp, counters.BytesDown, counters.ReadUp, counters.ReadDown, frozen.QuietMs,
            new RestoredCircuit(frozen.Client, frozen.Upstream, frozen.ToUpstream, frozen.ToClient, frozen.Up, frozen.Down));
        var guardian = await relay.System.ActorSelection("/user/relay").ResolveOne(Wait);
        var entry = Assert.Single((await AskAsync<ListenerProtocol.CircuitsAdopted>(guardian, new ListenerProtocol.AdoptCircuits("test", [moved]))).Adopted);
        await Eventually.Holds(() => relay.Circuits.TryGet(old.Id, out var listed) && ReferenceEquals(listed, entry),
            "the restored circuit to be listed under its old id");
        return entry;
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
        private bool _splice;
        private TestServer _server = null!;
        private Socket _client = null!;
        private Task<byte[]> _serverSent = null!;
        private Task<(long Bytes, byte[] Hash)> _serverRead = null!;
        private Task<byte[]> _clientSent = null!;
        private Task<(long Bytes, byte[] Hash)> _clientRead = null!;

        public RelayNode Relay { get; private set; } = null!;

        public Actors.Configuration.RouteSettings Route { get; private set; } = null!;

        /// <param name="splice">
        /// Whether the route splices: the download then fills whole reads and goes through a
        /// pipe, and what the relay holds for the client that is not reading is in that pipe
        /// rather than at the writer.
        /// </param>
        public static async Task<StreamingCircuit> StartAsync(bool splice = false)
        {
            var run = new StreamingCircuit { _splice = splice };
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
            var circuit = TestSettings.Circuit(writeSize: 16 * 1024, window: 128 * 1024, splice: splice);
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

        /// <summary>A spliced direction holds what is left in its pipe (up to a read's 16 KiB), however little.</summary>
        private int HeldAtLeast => _splice ? 1 : Backlog;

        /// <summary>Freezes the circuit once the relay holds bytes for the client that is not reading.</summary>
        public async Task<CircuitHandoverProtocol.Frozen> FreezeAsync()
        {
            CircuitEntry? entry = null;
            // Spliced: also until the first bytes left the pipe, since the reader counts a read
            // into the pipe before it drains it, and a busy machine can show the one without the other.
            await Eventually.Holds(
                () => Relay.Circuits.Snapshot() is [var only] && (entry = only).Counters.ReadDown - only.Counters.BytesDown >= HeldAtLeast
                      && (!_splice || only.Counters.Spliced > 0),
                "the relay to hold bytes for the client that is not reading (and, spliced, to have spliced some)", Wait);
            // The direction spliced exactly when the route says so.
            Assert.Equal(_splice, entry!.Counters.Spliced > 0);
            var frozen = await CircuitFreezeTests.FreezeAsync(entry!);
            // A spliced direction may have just emptied its pipe into the client's buffers (the
            // pipe is all it holds): thaw and freeze again until it holds some (bounded).
            for (var attempt = 0; attempt < 50 && _splice && frozen.ToClient.Length == 0; attempt++)
            {
                entry!.Supervisor.Tell(new CircuitHandoverProtocol.Thaw(entry.Id));
                await Eventually.Holds(() => entry.State != CircuitState.HandingOver, "the thawed circuit to run again");
                await Task.Delay(20);
                frozen = await CircuitFreezeTests.FreezeAsync(entry);
            }

            Assert.Same(entry, frozen.Entry);
            Assert.Equal(CircuitState.HandingOver, entry!.State);

            // Frozen, what the relay holds of each direction is what it read and did not write.
            var counters = entry.Counters;
            Assert.Equal(counters.ReadDown - counters.BytesDown, frozen.ToClient.Length);
            Assert.Equal(counters.ReadUp - counters.BytesUp, frozen.ToUpstream.Length);
            Assert.True(frozen.ToClient.Length > 0, "the relay holds bytes for the client that is not reading");
            return frozen;
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
