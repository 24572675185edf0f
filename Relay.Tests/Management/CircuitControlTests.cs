using System.Net;
using System.Net.Sockets;
using Relay.Tests.Support;

namespace Relay.Tests.Management;

public sealed class CircuitControlTests
{
    private const string Token = "s3cret-management-token";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Delete_with_the_token_resets_both_sockets_of_the_circuit()
    {
        var upstreamSaw = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = new TestServer(async s => upstreamSaw.TrySetResult(await SocketIo.ReadUntilClosedAsync(s, Timeout)));
        await using var relay = await LiveRelay.StartAsync(upstream.Endpoint, Token);
        using var client = await SocketIo.ConnectAsync(relay.Listen);
        var id = await EstablishedCircuitAsync(relay);

        var (status, json) = await relay.SendAsync(HttpMethod.Delete, $"/circuits/{id}", Token);

        Assert.Equal(HttpStatusCode.Accepted, status);
        Assert.Equal(id, json.GetProperty("id").GetInt64());
        Assert.Equal("reset", await SocketIo.ReadUntilClosedAsync(client, Timeout));
        Assert.Equal("reset", await upstreamSaw.Task.WaitAsync(Timeout));
        relay.Log.WaitForJson(j => j.TryGetProperty("EventName", out var e) && e.GetString() == "CircuitClosed"
                                   && j.GetProperty("Reason").GetString() == "aborted");
    }

    [Fact]
    public async Task Delete_without_the_right_token_is_401_and_logs_who_asked_but_never_the_token()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(upstream.Endpoint, Token);
        using var client = await SocketIo.ConnectAsync(relay.Listen);
        var id = await EstablishedCircuitAsync(relay);

        var (missing, missingJson) = await relay.SendAsync(HttpMethod.Delete, $"/circuits/{id}");
        var (wrong, _) = await relay.SendAsync(HttpMethod.Delete, $"/circuits/{id}", "guess-" + Token);

        Assert.Equal(HttpStatusCode.Unauthorized, missing);
        Assert.Equal(HttpStatusCode.Unauthorized, wrong);
        Assert.Contains("Authorization: Bearer", missingJson.GetProperty("error").GetString());
        Assert.True(relay.Node.Circuits.TryGet(id, out _), "the circuit must still be open");
        var logged = relay.Log.WaitForJson(j => j.TryGetProperty("EventName", out var e) && e.GetString() == "ManagementUnauthorized"
                                                && j.GetProperty("Problem").GetString() == "wrong bearer token");
        Assert.Equal("Warning", logged.GetProperty("@l").GetString());
        Assert.Equal("DELETE", logged.GetProperty("Method").GetString());
        Assert.Equal($"/circuits/{id}", logged.GetProperty("Path").GetString());
        Assert.Equal("127.0.0.1", logged.GetProperty("RemoteAddress").GetString());
        Assert.DoesNotContain(relay.Log.Lines(), line => line.Contains(Token, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Delete_with_no_token_configured_is_403_saying_how_to_configure_one()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(upstream.Endpoint, token: "");
        using var client = await SocketIo.ConnectAsync(relay.Listen);
        var id = await EstablishedCircuitAsync(relay);

        var (status, json) = await relay.SendAsync(HttpMethod.Delete, $"/circuits/{id}", "anything");

        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Contains("relay.management.token", json.GetProperty("error").GetString());
        Assert.Contains("--management-token", json.GetProperty("error").GetString());
        Assert.True(relay.Node.Circuits.TryGet(id, out _), "the circuit must still be open");
    }

    [Fact]
    public async Task Delete_of_a_circuit_that_is_not_open_is_404()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(upstream.Endpoint, Token);

        var (status, json) = await relay.SendAsync(HttpMethod.Delete, "/circuits/424242", Token);

        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains("424242", json.GetProperty("error").GetString());
    }

    [Fact]
    public async Task Circuit_detail_has_TCP_INFO_of_both_sockets_of_an_established_circuit()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(upstream.Endpoint);
        using var client = await SocketIo.ConnectAsync(relay.Listen);
        var id = await EstablishedCircuitAsync(relay);

        var (status, json) = await relay.GetJsonAsync($"/circuits/{id}");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("established", json.GetProperty("state").GetString());
        foreach (var side in new[] { "client", "upstream" })
        {
            var info = json.GetProperty("tcpInfo").GetProperty(side);
            Assert.Equal("established", info.GetProperty("state").GetString());
            Assert.True(info.GetProperty("mss").GetUInt32() > 0, $"{side} mss");
            Assert.True(info.GetProperty("cwnd").GetUInt32() > 0, $"{side} cwnd");
            Assert.True(info.GetProperty("rttMicros").GetUInt32() > 0, $"{side} rtt");
            Assert.Equal(0, info.GetProperty("retransmits").GetInt32());
            Assert.True(info.TryGetProperty("totalRetrans", out _));
            Assert.True(info.TryGetProperty("unacked", out _));
        }
    }

    /// <summary>Pings through the circuit, so it is established both ways, and returns its id.</summary>
    private static async Task<long> EstablishedCircuitAsync(LiveRelay relay)
    {
        await Eventually.Holds(() => relay.Node.Circuits.Count == 1, "the circuit to open");
        var entry = relay.Node.Circuits.Snapshot().Single();
        await Eventually.Holds(() => entry.State == Relay.Actors.Circuits.CircuitState.Established, "the circuit to be established");
        return entry.Id;
    }
}
