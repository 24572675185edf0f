using System.Net.Sockets;
using Relay.Actors;
using Relay.Actors.Circuits;
using Relay.Tests.Support;

namespace Relay.Tests.Circuits;

/// <summary>
/// A bulk direction goes through a splice pipe (socket to pipe to socket, never in user space)
/// once a read fills a whole write-size. Checked with real sockets: both directions at once,
/// each ending with its own FIN while the other goes on, every byte in order; a short exchange
/// never splices; a route with <c>splice = off</c> never does; a reset in mid-transfer resets
/// the other side too.
/// </summary>
public sealed class SpliceTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Both_directions_at_once_arrive_intact_and_end_one_after_the_other_spliced_only_when_the_route_says_so(bool splice)
    {
        const long up = 24L * 1024 * 1024;
        const long down = 40L * 1024 * 1024;
        var serverSent = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        var serverRead = new TaskCompletionSource<(long, byte[])>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = new TestServer(async socket =>
        {
            var reading = SocketIo.ReadToEndAsync(socket);
            serverSent.SetResult(await SocketIo.SendRandomAsync(socket, down, seed: 71));
            // The download goes on after the upload's FIN has arrived here, and ends after it.
            serverRead.SetResult(await reading);
            socket.Shutdown(SocketShutdown.Send);
        });
        var circuit = TestSettings.Circuit(writeSize: 64 * 1024, window: 256 * 1024, splice: splice);
        await using var relay = await RelayHarness.StartAsync(server.Endpoint, circuit);
        using var client = await SocketIo.ConnectAsync(relay.Listen());

        // The entry is taken before the client's FIN: copying on loopback, the download can be
        // over by then, and the FIN ends the circuit at once.
        CircuitEntry? entry = null;
        await Eventually.Holds(() => relay.Circuits.Snapshot() is [var only] && (entry = only) is not null, "the circuit in the table", Wait);
        var clientRead = SocketIo.ReadToEndAsync(client);
        var clientSent = await SocketIo.SendRandomAsync(client, up, seed: 72);
        client.Shutdown(SocketShutdown.Send);
        var (upBytes, upHash) = await serverRead.Task.WaitAsync(Wait);
        var (downBytes, downHash) = await clientRead.WaitAsync(Wait);

        Assert.Equal(up, upBytes);
        Assert.Equal(clientSent, upHash);
        Assert.Equal(down, downBytes);
        Assert.Equal(await serverSent.Task, downHash);
        await Eventually.Holds(() => relay.Circuits.Count == 0, "the circuit to close after both FINs", Wait);
        Assert.Equal(up, entry!.Counters.BytesUp);
        Assert.Equal(down, entry.Counters.BytesDown);
        if (splice)
        {
            // Only the first read of each direction (and whatever the writer held) was copied.
            Assert.True(entry.Counters.Spliced > (up + down) / 2, $"{entry.Counters.Spliced} of {up + down} bytes spliced");
        }
        else
        {
            Assert.Equal(0, entry.Counters.Spliced);
        }
    }

    [Fact]
    public async Task A_short_exchange_never_fills_a_read_and_is_never_spliced()
    {
        await using var server = new TestServer(TestServer.Echo);
        await using var relay = await RelayHarness.StartAsync(server.Endpoint, TestSettings.Circuit(writeSize: 64 * 1024));
        using var client = await SocketIo.ConnectAsync(relay.Listen());

        for (var i = 0; i < 20; i++)
        {
            var request = new byte[1_000];
            Random.Shared.NextBytes(request);
            await client.SendAsync(request, SocketFlags.None);
            Assert.Equal(request, await SocketIo.ReadExactlyAsync(client, request.Length).WaitAsync(Wait));
        }

        var entry = Assert.Single(relay.Circuits.Snapshot());
        Assert.Equal(20_000, entry.Counters.BytesDown);
        Assert.Equal(0, entry.Counters.Spliced);
    }

    [Fact]
    public async Task A_client_reset_in_mid_splice_resets_the_server_and_closes_the_circuit()
    {
        var serverOutcome = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = new TestServer(async socket =>
        {
            try
            {
                await SocketIo.SendRandomAsync(socket, 1L << 30, seed: 73);
                serverOutcome.SetResult("sent everything");
            }
            catch (SocketException e)
            {
                serverOutcome.SetResult(e.SocketErrorCode.ToString());
            }
        });
        await using var relay = await RelayHarness.StartAsync(server.Endpoint, TestSettings.Circuit(writeSize: 64 * 1024));
        var client = await SocketIo.ConnectAsync(relay.Listen());
        var buffer = new byte[256 * 1024];
        long received = 0;
        while (received < 8L * 1024 * 1024)
        {
            received += await client.ReceiveAsync(buffer.AsMemory(), SocketFlags.None).AsTask().WaitAsync(Wait);
        }

        var entry = Assert.Single(relay.Circuits.Snapshot());
        Assert.True(entry.Counters.Spliced > 0, "the download to be spliced before the reset");
        SocketIo.Abort(client);

        // ECONNRESET, or EPIPE for a send after the reset had arrived: a FIN would have let it send on.
        Assert.Contains(await serverOutcome.Task.WaitAsync(Wait), new[] { nameof(SocketError.ConnectionReset), nameof(SocketError.Shutdown) });
        await Eventually.Holds(() => relay.Circuits.Count == 0, "the reset circuit to close", Wait);
        Assert.Equal(CircuitState.Closed, entry.State);
    }
}
