using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Relay.Actors.Circuits;
using Relay.Actors.Configuration;
using Relay.Tests.Management;
using Relay.Tests.Support;

namespace Relay.Tests.Circuits;

/// <summary>
/// Null circuits: the client connects and ends the connection, with a FIN or a reset, before a
/// byte moves either way, as a balancer's TCP health check does. On a quiet route (the default)
/// they are logged at Debug and counted in <c>relay_circuits_null_total</c>, not as
/// <c>client-reset</c> errors; on a <c>null-circuits = log</c> route they are logged and counted
/// like any circuit. Real sockets, the relay's own Serilog pipeline and its /metrics text.
/// </summary>
public sealed class NullCircuitTests
{
    private const string Token = "null-token";
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task A_check_that_connects_and_closes_or_resets_is_Debug_and_not_an_error_on_a_quiet_route_and_as_before_on_a_log_route()
    {
        await using var server = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(server.Endpoint, Token,
            TestSettings.Route(server.Endpoint, name: "quiet"),
            TestSettings.Route(server.Endpoint, TestSettings.Circuit() with { NullCircuits = NullCircuits.Log }, name: "log"));
        // Debug on, so a quiet circuit's close line is written and its level can be read.
        var (status, _) = await relay.SendAsync(HttpMethod.Put, "/loglevel", Token, """{"level":"Debug"}""");
        Assert.Equal(HttpStatusCode.OK, status);

        foreach (var route in new[] { "quiet", "log" })
        {
            var listen = relay.Node.EndpointOf(route);
            await ConnectAndCloseAsync(listen);
            await ConnectAndResetAsync(relay, route, listen);
        }

        await Eventually.Holds(() => relay.Node.Circuits.Count == 0, "every circuit to close");
        var metrics = PrometheusText.Parse(await relay.GetTextAsync("/metrics"));
        Assert.Equal(2, metrics.Value("relay_circuits_null_total", ("route", "quiet")));
        Assert.Equal(0, metrics.Value("relay_circuit_errors_total", ("route", "quiet"), ("reason", "client-reset")));
        Assert.Equal(1, metrics.Value("relay_circuits_closed_total", ("route", "quiet"), ("reason", "client-reset")));
        Assert.Equal(1, metrics.Value("relay_circuits_closed_total", ("route", "quiet"), ("reason", "complete")));
        Assert.Equal(0, metrics.Value("relay_circuits_null_total", ("route", "log")));
        Assert.Equal(1, metrics.Value("relay_circuit_errors_total", ("route", "log"), ("reason", "client-reset")));
        Assert.Equal(1, metrics.Value("relay_circuits_closed_total", ("route", "log"), ("reason", "client-reset")));
        Assert.Equal(1, metrics.Value("relay_circuits_closed_total", ("route", "log"), ("reason", "complete")));

        // The event keeps its name; only its level says it was a null circuit.
        var quiet = ClosedLines(relay, "quiet", 2);
        Assert.All(quiet, j => Assert.Equal("Debug", Level(j)));
        Assert.Equal(["client-reset", "complete"], quiet.Select(j => j.GetProperty("Reason").GetString()).Order());
        var loud = ClosedLines(relay, "log", 2);
        Assert.All(loud, j => Assert.Equal("Information", Level(j)));
        Assert.Equal(["client-reset", "complete"], loud.Select(j => j.GetProperty("Reason").GetString()).Order());
    }

    [Fact]
    public async Task A_circuit_whose_upstream_refused_is_an_error_at_Information_on_a_quiet_route_although_no_byte_moved()
    {
        await using var server = new TestServer(TestServer.Echo);
        var refusing = new IPEndPoint(IPAddress.Loopback, Endpoints.ClosedPort());
        await using var relay = await LiveRelay.StartAsync(server.Endpoint, Token, TestSettings.Route(refusing, name: "quiet"));

        Assert.Equal("reset", await SocketIo.ConnectThenReadUntilClosedAsync(relay.Node.EndpointOf("quiet"), Wait));

        var closed = Assert.Single(ClosedLines(relay, "quiet", 1));
        Assert.Equal("Information", Level(closed));
        Assert.Equal(CloseReasons.UpstreamRefused, closed.GetProperty("Reason").GetString());
        var metrics = PrometheusText.Parse(await relay.GetTextAsync("/metrics"));
        Assert.Equal(1, metrics.Value("relay_circuit_errors_total", ("route", "quiet"), ("reason", "upstream-refused")));
        Assert.Equal(0, metrics.Value("relay_circuits_null_total", ("route", "quiet")));
    }

    [Fact]
    public async Task A_circuit_that_moved_bytes_then_was_reset_by_its_client_is_still_a_client_reset_error()
    {
        await using var server = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(server.Endpoint, Token, TestSettings.Route(server.Endpoint, name: "quiet"));

        using (var client = await SocketIo.ConnectAsync(relay.Node.EndpointOf("quiet")))
        {
            await client.SendAsync("ping"u8.ToArray(), SocketFlags.None);
            Assert.Equal("ping"u8.ToArray(), await SocketIo.ReadExactlyAsync(client, 4).WaitAsync(Wait));
            SocketIo.Abort(client);
        }

        var closed = Assert.Single(ClosedLines(relay, "quiet", 1));
        Assert.Equal("Information", Level(closed));
        Assert.Equal(CloseReasons.ClientReset, closed.GetProperty("Reason").GetString());
        var metrics = PrometheusText.Parse(await relay.GetTextAsync("/metrics"));
        Assert.Equal(1, metrics.Value("relay_circuit_errors_total", ("route", "quiet"), ("reason", "client-reset")));
        Assert.Equal(0, metrics.Value("relay_circuits_null_total", ("route", "quiet")));
    }

    /// <summary>Connects and sends its FIN at once, as a check that closes politely, and waits for the relay's FIN.</summary>
    private static async Task ConnectAndCloseAsync(IPEndPoint listen)
    {
        using var client = await SocketIo.ConnectAsync(listen);
        client.Shutdown(SocketShutdown.Send);
        Assert.Equal("eof", await SocketIo.ReadUntilClosedAsync(client, Wait));
    }

    /// <summary>
    /// Connects and resets, as HAProxy's TCP check does (it closes with SO_LINGER 0). The reset
    /// waits for the circuit to be listed, so it is the circuit that sees it, not the accept queue.
    /// </summary>
    private static async Task ConnectAndResetAsync(LiveRelay relay, string route, IPEndPoint listen)
    {
        var client = await SocketIo.ConnectAsync(listen);
        await Eventually.Holds(() => relay.Node.Circuits.Snapshot().Any(c => c.Route == route && c.State == CircuitState.Established),
            $"the circuit on {route} to be established");
        SocketIo.Abort(client);
        await Eventually.Holds(() => relay.Node.Circuits.Snapshot().All(c => c.Route != route), $"the circuit on {route} to close");
    }

    private static IReadOnlyList<JsonElement> ClosedLines(LiveRelay relay, string route, int expected) =>
        relay.Log.WaitForJsonLines(
            j => j.TryGetProperty("EventName", out var e) && e.GetString() == "CircuitClosed" && j.GetProperty("Route").GetString() == route,
            expected, Wait, $"CircuitClosed for {route}");

    /// <summary>CLEF leaves out <c>@l</c> for Information.</summary>
    private static string Level(JsonElement json) => json.TryGetProperty("@l", out var level) ? level.GetString()! : "Information";

}
