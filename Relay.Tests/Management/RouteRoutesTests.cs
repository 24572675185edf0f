using System.Net;
using System.Net.Sockets;
using Relay.Tests.Support;

namespace Relay.Tests.Management;

public sealed class RouteRoutesTests
{
    private const string Token = "drain-token";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Routes_lists_each_route_with_its_bound_endpoint_upstream_state_and_counters()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(upstream.Endpoint);
        using var client = await SocketIo.ConnectAsync(relay.Listen);
        await client.SendAsync(new byte[500], SocketFlags.None);
        await SocketIo.ReadExactlyAsync(client, 500).WaitAsync(Timeout);

        var (status, json) = await relay.GetJsonAsync("/routes");

        Assert.Equal(HttpStatusCode.OK, status);
        var route = Assert.Single(json.EnumerateArray());
        Assert.Equal(
            ["name", "listen", "upstream", "state", "active", "total", "bytesUp", "bytesDown", "balance", "members"],
            route.EnumerateObject().Select(p => p.Name));
        Assert.Equal("test", route.GetProperty("name").GetString());
        Assert.Equal(relay.Listen.ToString(), route.GetProperty("listen").GetString());
        Assert.Equal(upstream.Endpoint.ToString(), route.GetProperty("upstream").GetString());
        Assert.Equal("listening", route.GetProperty("state").GetString());
        Assert.Equal(1, route.GetProperty("active").GetInt64());
        Assert.Equal(1, route.GetProperty("total").GetInt64());
        Assert.Equal(500, route.GetProperty("bytesUp").GetInt64());
        Assert.Equal(500, route.GetProperty("bytesDown").GetInt64());
        Assert.Equal("round-robin", route.GetProperty("balance").GetString());
        var member = Assert.Single(route.GetProperty("members").EnumerateArray());
        Assert.Equal(upstream.Endpoint.ToString(), member.GetProperty("address").GetString());
        Assert.Equal("up", member.GetProperty("state").GetString());
        Assert.Equal(1, member.GetProperty("active").GetInt32());
    }

    [Fact]
    public async Task Drain_refuses_new_connects_while_an_open_circuit_finishes_its_transfer()
    {
        var payload = new byte[4 * 1024 * 1024];
        new Random(7).NextBytes(payload);
        await using var upstream = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(upstream.Endpoint, Token);
        using var client = await SocketIo.ConnectAsync(relay.Listen);
        var reading = SocketIo.ReadToEndAsync(client);
        await client.SendAsync(payload.AsMemory(0, payload.Length / 2), SocketFlags.None);

        var (status, json) = await relay.SendAsync(HttpMethod.Post, "/routes/test/drain", Token);

        Assert.Equal(HttpStatusCode.Accepted, status);
        Assert.Equal("draining", json.GetProperty("state").GetString());
        var refused = await Assert.ThrowsAsync<SocketException>(() => SocketIo.ConnectAsync(relay.Listen));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
        var (_, routes) = await relay.GetJsonAsync("/routes");
        var route = Assert.Single(routes.EnumerateArray());
        Assert.Equal("draining", route.GetProperty("state").GetString());
        Assert.Equal(1, route.GetProperty("active").GetInt64());

        await client.SendAsync(payload.AsMemory(payload.Length / 2), SocketFlags.None);
        client.Shutdown(SocketShutdown.Send);
        var (bytes, hash) = await reading.WaitAsync(Timeout);

        Assert.Equal(payload.Length, bytes);
        Assert.Equal(SocketIo.Sha256(payload), hash);
        relay.Log.WaitForJson(j => j.TryGetProperty("EventName", out var e) && e.GetString() == "RouteDraining");
        relay.Log.WaitForJson(j => j.TryGetProperty("EventName", out var e) && e.GetString() == "CircuitClosed"
                                   && j.GetProperty("Reason").GetString() == "complete");
    }

    [Fact]
    public async Task Drain_twice_is_409_and_an_unknown_route_is_404()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(upstream.Endpoint, Token);

        var (first, _) = await relay.SendAsync(HttpMethod.Post, "/routes/test/drain", Token);
        var (second, secondJson) = await relay.SendAsync(HttpMethod.Post, "/routes/test/drain", Token);
        var (unknown, unknownJson) = await relay.SendAsync(HttpMethod.Post, "/routes/nope/drain", Token);

        Assert.Equal(HttpStatusCode.Accepted, first);
        Assert.Equal(HttpStatusCode.Conflict, second);
        Assert.Contains("already draining", secondJson.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.NotFound, unknown);
        Assert.Contains("'nope'", unknownJson.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Drain_without_the_token_is_401_and_the_route_keeps_accepting()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(upstream.Endpoint, Token);

        var (status, _) = await relay.SendAsync(HttpMethod.Post, "/routes/test/drain");

        Assert.Equal(HttpStatusCode.Unauthorized, status);
        using var client = await SocketIo.ConnectAsync(relay.Listen);
        await client.SendAsync(new byte[10], SocketFlags.None);
        await SocketIo.ReadExactlyAsync(client, 10).WaitAsync(Timeout);
    }
}
