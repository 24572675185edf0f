using System.Net;
using System.Net.Sockets;
using System.Text;
using Relay.Actors.Circuits;
using Relay.Actors.Sockets;
using Relay.Actors.Tuning;
using Relay.Tests.Support;

namespace Relay.Tests.Circuits;

/// <summary>
/// TCP's contract carried across the relay: a FIN ends one direction only, a reset is a
/// reset, failures to connect reach the client at once, and timeouts end stuck circuits.
/// </summary>
public sealed class TcpSemanticsTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Half_close_from_client_still_delivers_late_upstream_response()
    {
        var request = Encoding.ASCII.GetBytes("GET /big please");
        await using var server = new TestServer(async socket =>
        {
            var (bytes, _) = await SocketIo.ReadToEndAsync(socket);
            Assert.Equal(request.Length, bytes);
            // Answer long after the client's FIN: the circuit must still carry it.
            await Task.Delay(1500);
            await SocketIo.SendRandomAsync(socket, 4 * 1024 * 1024, seed: 7);
            socket.Shutdown(SocketShutdown.Send);
        });
        await using var relay = await RelayHarness.StartAsync(server.Endpoint);

        using var client = await SocketIo.ConnectAsync(relay.Listen());
        await client.SendAsync(request, SocketFlags.None);
        client.Shutdown(SocketShutdown.Send);

        await Eventually.Holds(
            () => relay.Circuits.Snapshot().Any(c => c.State == CircuitState.HalfClosed),
            "the circuit to be half-closed while the server thinks");
        var (received, hash) = await SocketIo.ReadToEndAsync(client).WaitAsync(Wait);

        Assert.Equal(4 * 1024 * 1024, received);
        await server.DrainAsync(Wait);
        Assert.Empty(server.Failures);
        await Eventually.Holds(() => relay.Circuits.Count == 0, "the circuit to close after both FINs");
    }

    [Fact]
    public async Task Half_close_from_upstream_still_carries_the_clients_remaining_bytes()
    {
        byte[]? receivedHash = null;
        await using var server = new TestServer(async socket =>
        {
            await socket.SendAsync(Encoding.ASCII.GetBytes("hello, send me your data"), SocketFlags.None);
            socket.Shutdown(SocketShutdown.Send);
            var (_, hash) = await SocketIo.ReadToEndAsync(socket);
            receivedHash = hash;
        });
        await using var relay = await RelayHarness.StartAsync(server.Endpoint);

        using var client = await SocketIo.ConnectAsync(relay.Listen());
        var (greeting, _) = await SocketIo.ReadToEndAsync(client).WaitAsync(Wait);
        Assert.Equal(24, greeting);

        // The server's direction is over; the client's is not.
        var sent = await SocketIo.SendRandomAsync(client, 8 * 1024 * 1024, seed: 3);
        client.Shutdown(SocketShutdown.Send);

        await server.DrainAsync(Wait);
        Assert.Empty(server.Failures);
        Assert.Equal(sent, receivedHash);
    }

    [Fact]
    public async Task A_short_answer_and_the_fin_right_behind_it_reach_the_client_in_one_segment_as_they_left_the_upstream()
    {
        // The upstream sends its answer and FIN as one segment (send with MSG_MORE, then
        // shutdown): a Connection: close response. The relay must not split them in two, so
        // the client sees exactly as many segments as from the upstream directly.
        var answer = new byte[1000];
        await using var server = new TestServer(async socket =>
        {
            // .NET's Send refuses MSG_MORE; the relay's own send(2) wrapper passes it.
            Assert.Equal(answer.Length, RawSocket.Send(socket, answer, 0, answer.Length, out var error, finFollows: true));
            Assert.Equal(SocketError.Success, error);
            socket.Shutdown(SocketShutdown.Send);
            await SocketIo.ReadToEndAsync(socket);
        });
        await using var relay = await RelayHarness.StartAsync(server.Endpoint);

        async Task<uint> SegmentsInFor(IPEndPoint endpoint)
        {
            using var client = await SocketIo.ConnectAsync(endpoint);
            var (received, _) = await SocketIo.ReadToEndAsync(client).WaitAsync(Wait);
            Assert.Equal(answer.Length, received);
            // Read before the client's own FIN, which the other end would answer.
            return SocketTuner.ReadTcpInfo(client)!.SegmentsIn!.Value;
        }

        var direct = await SegmentsInFor(server.Endpoint);
        var relayed = await SegmentsInFor(relay.Listen());

        Assert.Equal(direct, relayed);
        await Eventually.Holds(() => relay.Circuits.Count == 0, "the circuit to close after both FINs");
    }

    [Fact]
    public async Task Client_reset_is_carried_to_the_upstream_as_a_reset()
    {
        var serverSaw = new TaskCompletionSource<string>();
        await using var server = new TestServer(async socket =>
            serverSaw.SetResult(await SocketIo.ReadUntilClosedAsync(socket, Wait)));
        await using var relay = await RelayHarness.StartAsync(server.Endpoint);

        var client = await SocketIo.ConnectAsync(relay.Listen());
        await client.SendAsync(new byte[1000], SocketFlags.None);
        await Eventually.Holds(() => relay.Circuits.Snapshot().Any(c => c.Counters.BytesUp == 1000), "bytes to reach the upstream");
        SocketIo.Abort(client);

        Assert.Equal("reset", await serverSaw.Task.WaitAsync(Wait));
        await Eventually.Holds(() => relay.Circuits.Count == 0, "the circuit to end");
    }

    [Fact]
    public async Task Upstream_reset_is_carried_to_the_client_as_a_reset()
    {
        await using var server = new TestServer(async socket =>
        {
            await SocketIo.ReadExactlyAsync(socket, 10);
            SocketIo.Abort(socket);
        });
        await using var relay = await RelayHarness.StartAsync(server.Endpoint);

        using var client = await SocketIo.ConnectAsync(relay.Listen());
        await client.SendAsync(new byte[10], SocketFlags.None);

        Assert.Equal("reset", await SocketIo.ReadUntilClosedAsync(client, Wait));
    }

    [Fact]
    public async Task Refused_upstream_resets_the_client_at_once()
    {
        var closedPort = Endpoints.ClosedPort();
        var upstream = new IPEndPoint(IPAddress.Loopback, closedPort);
        await using var relay = await RelayHarness.StartAsync(upstream);

        Assert.Equal("reset", await SocketIo.ConnectThenReadUntilClosedAsync(relay.Listen(), TimeSpan.FromSeconds(3)));
        await Eventually.Holds(() => relay.Circuits.Count == 0, "the failed circuit to leave the table");
    }

    [Fact]
    public async Task Connect_timeout_resets_the_client_when_the_upstream_never_answers()
    {
        using var blackhole = await Endpoints.UnansweringAsync();
        var circuit = TestSettings.Circuit(connectTimeout: TimeSpan.FromMilliseconds(700));
        await using var relay = await RelayHarness.StartAsync(blackhole.Endpoint, circuit);

        using var client = await SocketIo.ConnectAsync(relay.Listen());
        var started = DateTime.UtcNow;
        var outcome = await SocketIo.ReadUntilClosedAsync(client, TimeSpan.FromSeconds(10));

        Assert.Equal("reset", outcome);
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromMilliseconds(500), "the reset came before the connect timeout");
    }

    [Fact]
    public async Task Idle_timeout_resets_a_circuit_that_moves_no_bytes()
    {
        var serverSaw = new TaskCompletionSource<string>();
        await using var server = new TestServer(async socket =>
            serverSaw.SetResult(await SocketIo.ReadUntilClosedAsync(socket, Wait)));
        var circuit = TestSettings.Circuit(idleTimeout: TimeSpan.FromMilliseconds(600));
        await using var relay = await RelayHarness.StartAsync(server.Endpoint, circuit);

        using var client = await SocketIo.ConnectAsync(relay.Listen());

        Assert.Equal("reset", await SocketIo.ReadUntilClosedAsync(client, Wait));
        Assert.Equal("reset", await serverSaw.Task.WaitAsync(Wait));
    }

    [Fact]
    public async Task Idle_timeout_spares_a_circuit_that_keeps_moving_bytes()
    {
        await using var server = new TestServer(TestServer.Echo);
        var circuit = TestSettings.Circuit(idleTimeout: TimeSpan.FromMilliseconds(1500));
        await using var relay = await RelayHarness.StartAsync(server.Endpoint, circuit);

        using var client = await SocketIo.ConnectAsync(relay.Listen());
        // 4 s of traffic, a byte every 250 ms: more than two idle timeouts long, never idle
        // (a 6x margin, so a busy test machine does not turn a pause into a false failure).
        for (var i = 0; i < 16; i++)
        {
            await client.SendAsync(new[] { (byte)i }, SocketFlags.None);
            Assert.Equal((byte)i, (await SocketIo.ReadExactlyAsync(client, 1))[0]);
            await Task.Delay(250);
        }

        client.Shutdown(SocketShutdown.Send);
        Assert.Equal("eof", await SocketIo.ReadUntilClosedAsync(client, Wait));
    }

    [Fact]
    public async Task Half_closed_timeout_resets_a_circuit_left_half_closed_and_quiet()
    {
        await using var server = new TestServer(async socket =>
        {
            // Reads the request and its FIN, then never answers and never closes.
            await SocketIo.ReadToEndAsync(socket);
            await Task.Delay(Wait);
        });
        var circuit = TestSettings.Circuit(halfClosedTimeout: TimeSpan.FromMilliseconds(700));
        await using var relay = await RelayHarness.StartAsync(server.Endpoint, circuit);

        using var client = await SocketIo.ConnectAsync(relay.Listen());
        await client.SendAsync(new byte[5], SocketFlags.None);
        client.Shutdown(SocketShutdown.Send);

        Assert.Equal("reset", await SocketIo.ReadUntilClosedAsync(client, Wait));
    }

    [Fact]
    public async Task Thousands_of_sequential_circuits_all_succeed_and_leave_no_half_closed_sockets()
    {
        // Seed 000: a relay whose sockets stuck in CLOSING made every other connection fail.
        const int cycles = 2000;
        await using var server = new TestServer(TestServer.Echo);
        await using var relay = await RelayHarness.StartAsync(server.Endpoint);
        var payload = new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 };

        for (var i = 0; i < cycles; i++)
        {
            using var client = await SocketIo.ConnectAsync(relay.Listen());
            await client.SendAsync(payload, SocketFlags.None);
            client.Shutdown(SocketShutdown.Send);
            var (bytes, _) = await SocketIo.ReadToEndAsync(client).WaitAsync(Wait);
            Assert.True(bytes == payload.Length, $"cycle {i} got {bytes} bytes back");
        }

        Assert.Equal(cycles, server.Accepted);
        var ports = new[] { relay.Listen().Port, server.Endpoint.Port };
        await Eventually.Holds(
            () => !TcpStates.ForPorts(ports).Any(s => TcpStates.Lingering.Contains(s.State)),
            "no socket of the relay's ports in CLOSE_WAIT, CLOSING, LAST_ACK or FIN_WAIT");
        Assert.Equal(0, relay.Circuits.Count);
    }

    [Fact]
    public async Task Slow_reader_keeps_the_relays_in_flight_bytes_within_the_window()
    {
        const int window = 128 * 1024;
        var release = new TaskCompletionSource();
        await using var server = new TestServer(async socket =>
        {
            // Accepts and does not read until released.
            await release.Task;
            await SocketIo.ReadToEndAsync(socket);
        });
        var circuit = TestSettings.Circuit(writeSize: 32 * 1024, window: window);
        await using var relay = await RelayHarness.StartAsync(server.Endpoint, circuit);

        using var client = await SocketIo.ConnectAsync(relay.Listen());
        client.Blocking = false;
        var chunk = new byte[64 * 1024];
        long pushed = 0;
        var quietSince = DateTime.UtcNow;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        // Push until the whole chain (kernel buffers + relay window) is full for a while.
        while (DateTime.UtcNow - quietSince < TimeSpan.FromMilliseconds(500) && DateTime.UtcNow < deadline)
        {
            var n = client.Send(chunk, 0, chunk.Length, SocketFlags.None, out var error);
            if (error == SocketError.Success && n > 0)
            {
                pushed += n;
                quietSince = DateTime.UtcNow;
            }
            else
            {
                await Task.Delay(10);
            }
        }

        var entry = Assert.Single(relay.Circuits.Snapshot());
        var heldByRelay = entry.Counters.ReadUp - entry.Counters.BytesUp;
        Assert.InRange(heldByRelay, 0, window);
        // The client was stopped by backpressure, not by the deadline: far less than the 20 s
        // of loopback bandwidth (gigabytes) got in.
        Assert.InRange(pushed, 1, 256L * 1024 * 1024);

        release.SetResult();
    }
}
