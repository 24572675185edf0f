using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Relay.Actors;
using Relay.Actors.Listening.Admission;
using Relay.Tests.Support;

namespace Relay.Tests.Circuits;

/// <summary>
/// Slow-loris clients against the route timeouts: a client that connects and never sends, one
/// that sends a byte now and then, one that half-closes and hangs, and one whose upstream never
/// answers. Each is cut at its limit, and everything it held is given back: the circuit, its
/// admission slot, and both sockets (none left in CLOSE_WAIT or FIN_WAIT).
/// </summary>
public sealed class SlowLorisTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan Limit = TimeSpan.FromMilliseconds(700);

    [Fact]
    public async Task A_client_that_connects_and_never_sends_is_cut_at_the_idle_timeout()
    {
        var serverSaw = new TaskCompletionSource<string>();
        await using var server = new TestServer(async socket => serverSaw.SetResult(await SocketIo.ReadUntilClosedAsync(socket, Wait)));
        await using var relay = await RelayHarness.StartAsync(server.Endpoint, TestSettings.Circuit(idleTimeout: Limit));

        var clock = Stopwatch.StartNew(); // before the connect, so it cannot start after the relay's timer
        using var client = await SocketIo.ConnectAsync(relay.Listen());

        Assert.Equal("reset", await SocketIo.ReadUntilClosedAsync(client, Wait));
        AssertCutAt(clock.Elapsed, Limit);
        Assert.Equal("reset", await serverSaw.Task.WaitAsync(Wait));
        await AssertEverythingFreedAsync(relay, server.Endpoint.Port);
    }

    [Fact]
    public async Task A_client_dribbling_bytes_lives_while_each_gap_is_under_the_idle_timeout_and_is_cut_at_its_first_long_gap()
    {
        var received = 0;
        var serverSaw = new TaskCompletionSource<string>();
        await using var server = new TestServer(async socket =>
        {
            var buffer = new byte[16];
            try
            {
                while (true)
                {
                    var n = await socket.ReceiveAsync(buffer, SocketFlags.None);
                    if (n == 0)
                    {
                        serverSaw.SetResult("eof");
                        return;
                    }

                    Interlocked.Add(ref received, n);
                }
            }
            catch (SocketException)
            {
                serverSaw.SetResult("reset");
            }
        });
        var idle = TimeSpan.FromMilliseconds(1500);
        await using var relay = await RelayHarness.StartAsync(server.Endpoint, TestSettings.Circuit(idleTimeout: idle));

        using var client = await SocketIo.ConnectAsync(relay.Listen());
        // A byte every 250 ms for 3 s: twice the idle timeout, yet never idle for it.
        // The clock restarts just before each byte leaves, so it never runs ahead of the relay's
        // own last-activity stamp, however late the test's own continuations run on a loaded machine.
        var sinceLastByte = new Stopwatch();
        for (var i = 0; i < 12; i++)
        {
            sinceLastByte.Restart();
            await client.SendAsync(new[] { (byte)i }, SocketFlags.None);
            await Task.Delay(250);
        }

        await Eventually.Holds(() => Volatile.Read(ref received) == 12, "every dribbled byte to reach the upstream");
        Assert.Equal(1, relay.Circuits.Count);

        // Then the gap that is too long, timed from the last byte.
        Assert.Equal("reset", await SocketIo.ReadUntilClosedAsync(client, Wait));
        AssertCutAt(sinceLastByte.Elapsed, idle);
        Assert.Equal("reset", await serverSaw.Task.WaitAsync(Wait));
        await AssertEverythingFreedAsync(relay, server.Endpoint.Port);
    }

    [Fact]
    public async Task A_client_that_half_closes_and_hangs_is_cut_at_the_half_closed_timeout()
    {
        await using var server = new TestServer(async socket =>
        {
            // Takes the request and its FIN, then answers nothing and never closes.
            await SocketIo.ReadToEndAsync(socket);
            await Task.Delay(Wait);
        });
        await using var relay = await RelayHarness.StartAsync(server.Endpoint,
            TestSettings.Circuit(idleTimeout: TimeSpan.FromMinutes(5), halfClosedTimeout: Limit));

        using var client = await SocketIo.ConnectAsync(relay.Listen());
        await client.SendAsync(new byte[100], SocketFlags.None);
        var clock = Stopwatch.StartNew();
        client.Shutdown(SocketShutdown.Send);

        Assert.Equal("reset", await SocketIo.ReadUntilClosedAsync(client, Wait));
        AssertCutAt(clock.Elapsed, Limit);
        await AssertEverythingFreedAsync(relay, server.Endpoint.Port);
    }

    [Fact]
    public async Task A_client_whose_upstream_never_answers_is_cut_at_the_connect_timeout()
    {
        using var upstream = await Endpoints.UnansweringAsync();
        await using var relay = await RelayHarness.StartAsync(upstream.Endpoint, TestSettings.Circuit(connectTimeout: Limit));

        // The relay starts its connect timer when it accepts, which can be before ConnectAsync
        // returns here; starting the clock first keeps it from running behind the relay's.
        var clock = Stopwatch.StartNew();
        string verdict;
        try
        {
            using var client = await SocketIo.ConnectAsync(relay.Listen());
            await client.SendAsync(new byte[10], SocketFlags.None); // bytes a slow upstream would never see
            verdict = await SocketIo.ReadUntilClosedAsync(client, Wait);
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset)
        {
            // Under load the test's connect or send can complete after the relay has already
            // cut the circuit: the reset then surfaces there (seen under a busy loop).
            verdict = "reset";
        }

        Assert.Equal("reset", verdict);
        AssertCutAt(clock.Elapsed, Limit);
        await AssertEverythingFreedAsync(relay, upstream.Endpoint.Port);
    }

    /// <summary>
    /// Not before the limit, and not long after it. Each clock starts before the event the relay
    /// times from, so it can only read long; the 150 ms covers the relay's millisecond tick
    /// rounding and timer granularity, never the test's own scheduling.
    /// </summary>
    private static void AssertCutAt(TimeSpan elapsed, TimeSpan limit) =>
        Assert.InRange(elapsed, limit - TimeSpan.FromMilliseconds(150), limit + TimeSpan.FromSeconds(3));

    private static async Task AssertEverythingFreedAsync(RelayNode relay, int upstreamPort)
    {
        var relayPort = relay.Listen().Port;
        await Eventually.Holds(() => relay.Circuits.Count == 0, "the circuit to be gone");
        await Eventually.Holds(() => NodeAdmission.For(relay.System).Active == 0, "its admission slot to be released");
        await Eventually.Holds(() => !TcpStates.ForPorts(relayPort, upstreamPort).Any(s =>
                TcpStates.Lingering.Contains(s.State) && (s.LocalPort == relayPort || s.RemotePort == upstreamPort)),
            "no relay socket left half-closed");
        Assert.Equal(0, relay.Metrics.ForRoute("test").Active);
    }
}
