using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Akka.Configuration;
using Relay.Actors;
using Relay.Actors.Circuits;
using Relay.Actors.Configuration;
using Relay.Tests.Support;

namespace Relay.Tests.Circuits;

/// <summary>
/// A request sent with its FIN, answered late (<c>printf 'query\n' | socat -t 90 - TCP:relay</c>
/// against a slow server): with half-closed-timeout unset, as it is by default, the circuit
/// lives as long as idle-timeout allows, as HAProxy's client-fin falls back to its client
/// timeout. Set, it still cuts a half-closed circuit that goes quiet for that long. The routes
/// are read from HOCON over the embedded defaults, so the default is what is tested.
/// </summary>
public sealed class HalfClosedTimeoutTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    // The answer comes 1.5 s after the server reads the client's FIN: well inside idle-timeout
    // even when the test's own continuations run late on a loaded machine, and more than twice
    // the half-closed-timeout of the route that sets one.
    private static readonly TimeSpan AnswerDelay = TimeSpan.FromMilliseconds(1500);
    private static readonly TimeSpan Idle = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan HalfClosed = TimeSpan.FromMilliseconds(700);

    [Fact]
    public async Task Unset_by_default_a_half_closed_circuit_lives_to_its_idle_timeout_and_set_it_still_cuts_at_its_own()
    {
        await using var server = new TestServer(async socket =>
        {
            var request = await ReadRequestAsync(socket);
            if (request == "late")
            {
                await Task.Delay(AnswerDelay);
                await socket.SendAsync(Encoding.ASCII.GetBytes("answer\n"), SocketFlags.None);
                socket.Shutdown(SocketShutdown.Send);
            }
            else
            {
                await Task.Delay(Wait); // answers nothing and never closes
            }
        });
        var upstream = $"127.0.0.1:{server.Endpoint.Port}";
        var settings = RelaySettings.Create(ConfigurationFactory.ParseString($$"""
            relay.routes = [
              { name = unset, listen = "127.0.0.1:0", upstream = "{{upstream}}", idle-timeout = {{Idle.TotalMilliseconds}}ms }
              { name = set, listen = "127.0.0.1:0", upstream = "{{upstream}}", idle-timeout = {{Idle.TotalMilliseconds}}ms, half-closed-timeout = {{HalfClosed.TotalMilliseconds}}ms }
            ]
            """));
        Assert.Null(settings.Routes[0].Circuit.HalfClosedTimeout);
        await using var relay = await RelayHarness.StartAsync(settings);

        // All four at once, so the test takes one idle-timeout, not four.
        var unsetLate = SendWithFinAsync(relay, "unset", "late");
        var unsetSilent = SendWithFinAsync(relay, "unset", "silent");
        var setLate = SendWithFinAsync(relay, "set", "late");
        var setSilent = SendWithFinAsync(relay, "set", "silent");

        // Unset: the late answer arrives, and a quiet half-closed circuit is cut at idle-timeout,
        // not before, and says so.
        Assert.Equal(("answer\n", "eof"), Strip(await unsetLate));
        var silent = await unsetSilent;
        Assert.Equal("reset", silent.End);
        AssertCutAt(silent.Elapsed, Idle);
        await AssertClosedAsync(relay, "unset", (CloseReasons.Complete, 1), (CloseReasons.IdleTimeout, 1), (CloseReasons.HalfClosedTimeout, 0));

        // Set: both are cut at half-closed-timeout, the late answer never reaches the client.
        var late = await setLate;
        Assert.Equal(("", "reset"), Strip(late));
        AssertCutAt(late.Elapsed, HalfClosed);
        var quiet = await setSilent;
        Assert.Equal("reset", quiet.End);
        AssertCutAt(quiet.Elapsed, HalfClosed);
        await AssertClosedAsync(relay, "set", (CloseReasons.Complete, 0), (CloseReasons.IdleTimeout, 0), (CloseReasons.HalfClosedTimeout, 2));
    }

    private static (string Answer, string End) Strip((string Answer, string End, TimeSpan Elapsed) result) => (result.Answer, result.End);

    /// <summary>
    /// Sends <paramref name="request"/> and its FIN, then reads what comes back until the
    /// connection ends. The clock starts before the FIN leaves, so it can only read long
    /// against the relay's half-closed stamp.
    /// </summary>
    private static async Task<(string Answer, string End, TimeSpan Elapsed)> SendWithFinAsync(RelayNode relay, string route, string request)
    {
        using var client = await SocketIo.ConnectAsync(relay.EndpointOf(route));
        await client.SendAsync(Encoding.ASCII.GetBytes(request + "\n"), SocketFlags.None);
        var clock = Stopwatch.StartNew();
        client.Shutdown(SocketShutdown.Send);

        var answer = new StringBuilder();
        var buffer = new byte[256];
        using var deadline = new CancellationTokenSource(Wait);
        try
        {
            while (true)
            {
                var n = await client.ReceiveAsync(buffer, SocketFlags.None, deadline.Token);
                if (n == 0)
                {
                    return (answer.ToString(), "eof", clock.Elapsed);
                }

                answer.Append(Encoding.ASCII.GetString(buffer, 0, n));
            }
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted)
        {
            return (answer.ToString(), "reset", clock.Elapsed);
        }
        catch (OperationCanceledException)
        {
            return (answer.ToString(), "timeout", clock.Elapsed);
        }
    }

    private static async Task<string> ReadRequestAsync(Socket socket)
    {
        var text = new StringBuilder();
        var buffer = new byte[256];
        int n;
        while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None)) > 0)
        {
            text.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }

        return text.ToString().Trim();
    }

    /// <summary>Not before the limit (less the relay's millisecond tick rounding), and not long after it.</summary>
    private static void AssertCutAt(TimeSpan elapsed, TimeSpan limit) =>
        Assert.InRange(elapsed, limit - TimeSpan.FromMilliseconds(150), limit + TimeSpan.FromSeconds(3));

    private static async Task AssertClosedAsync(RelayNode relay, string route, params (string Reason, long Count)[] expected)
    {
        Dictionary<string, long> Closed() =>
            relay.Metrics.ForRoute(route).Sample(0, 0).ClosedByReason.ToDictionary(p => p.Key, p => p.Value);

        var total = expected.Sum(e => e.Count);
        await Eventually.Holds(() => Closed().Values.Sum() == total, $"{total} circuits of {route} to be counted closed");
        var closed = Closed();
        foreach (var (reason, count) in expected)
        {
            Assert.True(closed[reason] == count, $"{route}: {closed[reason]} circuit(s) closed with {reason}, expected {count}");
        }
    }
}
