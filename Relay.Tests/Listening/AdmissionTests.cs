using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Relay.Actors.Configuration;
using Relay.Actors.Listening.Admission;
using Relay.Tests.Management;
using Relay.Tests.Support;

namespace Relay.Tests.Listening;

/// <summary>
/// Access lists and limits on real sockets: who is refused is reset at once, counted by
/// reason and logged (throttled); everyone else, and every open circuit, is untouched.
/// </summary>
public sealed class AdmissionTests
{
    private static readonly TimeSpan Verdict = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task A_denied_ipv4_client_is_reset_counted_and_logged_with_its_address()
    {
        await using var server = new TestServer(TestServer.Echo);
        var route = TestSettings.Route(server.Endpoint) with { Access = Access(deny: ["127.0.0.0/8"]) };
        await using var relay = await LiveRelay.StartAsync(server.Endpoint, "", route);

        Assert.Equal("reset", await SocketIo.ConnectThenReadUntilClosedAsync(relay.Listen, Verdict));

        var line = relay.Log.WaitForJson(j => Event(j) == "ClientRefused");
        Assert.Equal("test", line.GetProperty("Route").GetString());
        Assert.StartsWith("127.0.0.1:", line.GetProperty("Client").GetString());
        Assert.Equal(RefusalReasons.Denied, line.GetProperty("Reason").GetString());
        Assert.Equal(1, await RefusedAsync(relay, RefusalReasons.Denied));
        Assert.Equal(0, server.Accepted);
        Assert.Equal(0, relay.Node.Circuits.Count);
    }

    [Fact]
    public async Task An_allow_list_admits_its_networks_and_refuses_every_other_client()
    {
        await using var server = new TestServer(TestServer.Echo);
        var route = TestSettings.Route(server.Endpoint) with { Access = Access(allow: ["127.0.0.2/32", "198.18.0.0/15"]) };
        await using var relay = await LiveRelay.StartAsync(server.Endpoint, "", route);

        Assert.Equal("reset", await SocketIo.ConnectThenReadUntilClosedAsync(relay.Listen, Verdict)); // from 127.0.0.1
        await AssertEchoesAsync(relay.Listen, from: IPAddress.Parse("127.0.0.2"));

        Assert.Equal(1, await RefusedAsync(relay, RefusalReasons.NotAllowed));
    }

    [Fact]
    public async Task Deny_wins_over_allow()
    {
        await using var server = new TestServer(TestServer.Echo);
        var route = TestSettings.Route(server.Endpoint) with { Access = Access(allow: ["127.0.0.0/8"], deny: ["127.0.0.3"]) };
        await using var relay = await RelayHarness.StartAsync(TestSettings.Relay(route));

        await AssertEchoesAsync(relay.Listen(), from: IPAddress.Parse("127.0.0.2"));
        Assert.Equal("reset", await ConnectFromThenReadAsync(relay.Listen(), IPAddress.Parse("127.0.0.3")));
    }

    [Fact]
    public async Task Ipv6_clients_are_matched_against_ipv6_networks()
    {
        await using var server = new TestServer(TestServer.Echo);
        var denied = TestSettings.Route(server.Endpoint, name: "denied") with
        {
            Listen = new IPEndPoint(IPAddress.IPv6Loopback, 0),
            Access = Access(allow: ["::/0"], deny: ["::1/128"]),
        };
        var allowed = TestSettings.Route(server.Endpoint, name: "allowed") with
        {
            Listen = new IPEndPoint(IPAddress.IPv6Loopback, 0),
            Access = Access(allow: ["::1"], deny: ["127.0.0.0/8"]),
        };
        await using var relay = await RelayHarness.StartAsync(TestSettings.Relay(denied, allowed));

        Assert.Equal("reset", await SocketIo.ConnectThenReadUntilClosedAsync(relay.EndpointOf("denied"), Verdict));
        await AssertEchoesAsync(relay.EndpointOf("allowed"));
        Assert.Equal(1, Refused(relay.Metrics.ForRoute("denied"), RefusalReasons.Denied));
    }

    [Fact]
    public async Task At_max_circuits_new_clients_are_reset_and_open_circuits_keep_working()
    {
        await using var server = new TestServer(TestServer.Echo);
        var route = TestSettings.Route(server.Endpoint) with { Limits = new LimitSettings(2, null, null) };
        await using var relay = await LiveRelay.StartAsync(server.Endpoint, "", route);

        using var first = await OpenEchoingAsync(relay.Listen);
        using var second = await OpenEchoingAsync(relay.Listen);
        Assert.Equal("reset", await SocketIo.ConnectThenReadUntilClosedAsync(relay.Listen, Verdict));

        await AssertStillEchoesAsync(first);
        await AssertStillEchoesAsync(second);
        Assert.Equal(1, await RefusedAsync(relay, RefusalReasons.MaxCircuits));

        // A closed circuit frees its place.
        first.Shutdown(SocketShutdown.Send);
        await SocketIo.ReadToEndAsync(first);
        await Eventually.Holds(() => relay.Node.Circuits.Count == 1, "the first circuit to close");
        await AssertEchoesAsync(relay.Listen);
    }

    [Fact]
    public async Task Max_circuits_per_source_limits_one_address_but_not_another()
    {
        await using var server = new TestServer(TestServer.Echo);
        var route = TestSettings.Route(server.Endpoint) with { Limits = new LimitSettings(null, 1, null) };
        await using var relay = await RelayHarness.StartAsync(TestSettings.Relay(route));

        using var held = await OpenEchoingAsync(relay.Listen());
        Assert.Equal("reset", await SocketIo.ConnectThenReadUntilClosedAsync(relay.Listen(), Verdict));
        await AssertEchoesAsync(relay.Listen(), from: IPAddress.Parse("127.0.0.2"));
        await AssertStillEchoesAsync(held);

        var admission = NodeAdmission.For(relay.System).Find("test")!;
        Assert.Equal(1, admission.OpenFrom(IPAddress.Loopback));
        Assert.Equal(1, Refused(relay.Metrics.ForRoute("test"), RefusalReasons.MaxCircuitsPerSource));

        held.Shutdown(SocketShutdown.Send);
        await SocketIo.ReadToEndAsync(held);
        await Eventually.Holds(() => admission.TrackedSources == 0, "the per-source table to forget closed clients");
        await AssertEchoesAsync(relay.Listen());
    }

    [Fact]
    public async Task Accept_rate_admits_a_burst_of_one_seconds_worth_then_refuses_the_excess()
    {
        await using var server = new TestServer(_ => Task.Delay(TimeSpan.FromSeconds(20)));
        var route = TestSettings.Route(server.Endpoint) with { Limits = new LimitSettings(null, null, 5) };
        await using var relay = await RelayHarness.StartAsync(TestSettings.Relay(route));
        var metrics = relay.Metrics.ForRoute("test");

        var clock = Stopwatch.StartNew();
        var clients = new List<Socket>();
        for (var i = 0; i < 20; i++)
        {
            var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            clients.Add(client);
            try
            {
                await client.ConnectAsync(relay.Listen());
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset)
            {
                // Refused so fast that the reset beat the connect's completion.
            }
        }

        // Accepted is counted before the verdict, on the acceptor's thread: wait for all 20
        // verdicts, not just the accepts, or a refusal still being counted reads as missing.
        await Eventually.Holds(() => metrics.Total + Refused(metrics, RefusalReasons.AcceptRate) == 20, "a verdict on every connection");
        var elapsed = clock.Elapsed;
        var admitted = metrics.Total;
        Assert.Equal(20, metrics.Accepted);
        // Five at once, then one more per 200 ms while the burst lasted.
        Assert.InRange(admitted, 5, 5 + (long)Math.Ceiling(elapsed.TotalSeconds * 5));
        Assert.Equal(20 - admitted, Refused(metrics, RefusalReasons.AcceptRate));
        clients.ForEach(c => c.Dispose());
    }

    [Fact]
    public async Task Node_wide_max_circuits_counts_every_route_together()
    {
        await using var server = new TestServer(TestServer.Echo);
        var settings = TestSettings.Relay(TestSettings.Route(server.Endpoint, name: "a"), TestSettings.Route(server.Endpoint, name: "b"))
            with { Limits = new LimitSettings(2, null, null) };
        await using var relay = await RelayHarness.StartAsync(settings);

        using var onA = await OpenEchoingAsync(relay.EndpointOf("a"));
        using var onB = await OpenEchoingAsync(relay.EndpointOf("b"));
        Assert.Equal("reset", await SocketIo.ConnectThenReadUntilClosedAsync(relay.EndpointOf("b"), Verdict));

        Assert.Equal(1, Refused(relay.Metrics.ForRoute("b"), RefusalReasons.NodeMaxCircuits));
        Assert.Equal(2, NodeAdmission.For(relay.System).Active);
        await AssertStillEchoesAsync(onA);
        await AssertStillEchoesAsync(onB);
    }

    [Fact]
    public async Task A_flood_of_refusals_is_logged_about_once_a_second_with_the_rest_counted()
    {
        await using var server = new TestServer(TestServer.Echo);
        var route = TestSettings.Route(server.Endpoint) with { Access = Access(deny: ["127.0.0.1"]) };
        await using var relay = await LiveRelay.StartAsync(server.Endpoint, "", route);

        var clock = Stopwatch.StartNew();
        for (var i = 0; i < 30; i++)
        {
            Assert.Equal("reset", await SocketIo.ConnectThenReadUntilClosedAsync(relay.Listen, Verdict));
        }

        var burst = clock.Elapsed;
        await Task.Delay(1100); // past the one-second window, so the next refusal is logged
        Assert.Equal("reset", await SocketIo.ConnectThenReadUntilClosedAsync(relay.Listen, Verdict));

        // The line after the pause carries the count of those not logged: nothing is lost.
        relay.Log.WaitForJson(j => Event(j) == "ClientRefused" && j.GetProperty("Suppressed").GetInt64() > 0);
        List<JsonElement> Logged() => relay.Log.Lines().Select(Json).Where(j => j is { } json && Event(json) == "ClientRefused").Select(j => j!.Value).ToList();
        await Eventually.Holds(() => Logged() is var logged && logged.Count + logged.Sum(j => j.GetProperty("Suppressed").GetInt64()) >= 31,
            "every refusal logged or counted in a later line's Suppressed");
        var lines = Logged();
        Assert.InRange(lines.Count, 2, 2 + (int)burst.TotalSeconds);
        Assert.Equal(31, lines.Count + lines.Sum(j => j.GetProperty("Suppressed").GetInt64()));
        Assert.Equal(31, await RefusedAsync(relay, RefusalReasons.Denied));
    }

    [Fact]
    public async Task The_refused_counter_is_exposed_for_every_reason()
    {
        await using var server = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(server.Endpoint);

        var samples = PrometheusText.Parse(await relay.GetTextAsync("/metrics"));

        var refused = samples.Where(s => s.Name == "relay_connections_refused_total").ToList();
        Assert.Equal(RefusalReasons.All.Order(), refused.Select(s => s.Labels["reason"]).Order());
        Assert.All(refused, s => Assert.Equal("test", s.Labels["route"]));
    }

    internal static AccessList Access(string[]? allow = null, string[]? deny = null) =>
        new((allow ?? []).Select(Network).ToList(), (deny ?? []).Select(Network).ToList());

    private static IPNetwork Network(string text) => IPNetwork.Parse(text.Contains('/') ? text : text + (text.Contains(':') ? "/128" : "/32"));

    internal static long Refused(Relay.Actors.Metrics.RouteMetrics metrics, string reason) =>
        metrics.RefusedByReason().Single(p => p.Key == reason).Value;

    private static async Task<long> RefusedAsync(LiveRelay relay, string reason)
    {
        var samples = PrometheusText.Parse(await relay.GetTextAsync("/metrics"));
        return (long)samples.Single(s => s.Name == "relay_connections_refused_total" && s.Labels["reason"] == reason).Value;
    }

    internal static string? Event(JsonElement json) =>
        json.TryGetProperty("EventName", out var name) ? name.GetString() : null;

    private static JsonElement? Json(string line)
    {
        try
        {
            using var document = JsonDocument.Parse(line);
            return document.RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }

    internal static async Task<Socket> ConnectFromAsync(IPEndPoint endpoint, IPAddress? from)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        if (from is not null)
        {
            socket.Bind(new IPEndPoint(from, 0));
        }

        await socket.ConnectAsync(endpoint);
        return socket;
    }

    private static async Task<string> ConnectFromThenReadAsync(IPEndPoint endpoint, IPAddress from)
    {
        try
        {
            using var socket = await ConnectFromAsync(endpoint, from);
            return await SocketIo.ReadUntilClosedAsync(socket, Verdict);
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset)
        {
            return "reset";
        }
    }

    /// <summary>A circuit that has carried one echo, so it is certainly admitted and established.</summary>
    internal static async Task<Socket> OpenEchoingAsync(IPEndPoint endpoint, IPAddress? from = null)
    {
        var socket = await ConnectFromAsync(endpoint, from);
        await AssertStillEchoesAsync(socket);
        return socket;
    }

    internal static async Task AssertStillEchoesAsync(Socket socket)
    {
        var ping = new byte[] { 1, 2, 3, 4 };
        await socket.SendAsync(ping, SocketFlags.None);
        Assert.Equal(ping, await SocketIo.ReadExactlyAsync(socket, ping.Length).WaitAsync(Verdict));
    }

    internal static async Task AssertEchoesAsync(IPEndPoint endpoint, IPAddress? from = null)
    {
        using var socket = await OpenEchoingAsync(endpoint, from);
        socket.Shutdown(SocketShutdown.Send);
        Assert.Equal(0, (await SocketIo.ReadToEndAsync(socket).WaitAsync(Verdict)).Bytes);
    }
}
