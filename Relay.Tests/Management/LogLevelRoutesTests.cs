using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Relay.Tests.Logging;
using Relay.Tests.Support;

namespace Relay.Tests.Management;

public sealed class LogLevelRoutesTests
{
    private const string Token = "level-token";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Loglevel_is_Information_by_default()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(upstream.Endpoint, Token);

        var (status, json) = await relay.GetJsonAsync("/loglevel");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Information", json.GetProperty("level").GetString());
    }

    [Fact]
    public async Task Put_Debug_makes_circuits_log_CircuitEstablished_and_back_to_Information_stops_it()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(upstream.Endpoint, Token);

        var (debugStatus, debug) = await relay.SendAsync(HttpMethod.Put, "/loglevel", Token, """{"level":"Debug"}""");
        Assert.Equal(HttpStatusCode.OK, debugStatus);
        Assert.Equal("Debug", debug.GetProperty("level").GetString());
        var first = await PingThroughCircuitAsync(relay);
        relay.Log.WaitForJson(j => IsEvent(j, "CircuitEstablished", first));

        var (infoStatus, _) = await relay.SendAsync(HttpMethod.Put, "/loglevel", Token, """{"level":"information"}""");
        Assert.Equal(HttpStatusCode.OK, infoStatus);
        var second = await PingThroughCircuitAsync(relay);
        // CircuitClosed comes after CircuitEstablished from the same actor, through the same
        // logger, so once it is captured an Established line would be there too.
        relay.Log.WaitForJson(j => IsEvent(j, "CircuitClosed", second));

        Assert.DoesNotContain(relay.Log.Lines(), line => LogCapture.TryParse(line) is { } j && IsEvent(j, "CircuitEstablished", second));
        Assert.Equal("Information", (await relay.GetJsonAsync("/loglevel")).Json.GetProperty("level").GetString());
        relay.Log.WaitForJson(j => j.TryGetProperty("EventName", out var e) && e.GetString() == "LogLevelChanged"
                                   && j.GetProperty("To").GetString() == "Debug");
    }

    [Fact]
    public async Task Put_an_unknown_level_or_a_bad_body_is_400_listing_the_allowed_levels()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(upstream.Endpoint, Token);

        var (unknown, unknownJson) = await relay.SendAsync(HttpMethod.Put, "/loglevel", Token, """{"level":"Chatty"}""");
        var (numeric, _) = await relay.SendAsync(HttpMethod.Put, "/loglevel", Token, """{"level":"1"}""");
        var (broken, brokenJson) = await relay.SendAsync(HttpMethod.Put, "/loglevel", Token, "{level");

        Assert.Equal(HttpStatusCode.BadRequest, unknown);
        Assert.Contains("Chatty", unknownJson.GetProperty("error").GetString());
        Assert.Contains("Verbose|Debug|Information|Warning|Error|Fatal", unknownJson.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, numeric);
        Assert.Equal(HttpStatusCode.BadRequest, broken);
        Assert.Contains("Verbose|Debug|Information|Warning|Error|Fatal", brokenJson.GetProperty("error").GetString());
        Assert.Equal("Information", (await relay.GetJsonAsync("/loglevel")).Json.GetProperty("level").GetString());
    }

    [Fact]
    public async Task Put_with_no_token_configured_is_403_and_changes_nothing()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(upstream.Endpoint, token: "");

        var (status, _) = await relay.SendAsync(HttpMethod.Put, "/loglevel", jsonBody: """{"level":"Debug"}""");

        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Equal("Information", (await relay.GetJsonAsync("/loglevel")).Json.GetProperty("level").GetString());
    }

    /// <summary>One complete circuit with a ping through it; returns its id.</summary>
    private static async Task<long> PingThroughCircuitAsync(LiveRelay relay)
    {
        using var client = await SocketIo.ConnectAsync(relay.Listen);
        await client.SendAsync(new byte[] { 42 }, SocketFlags.None);
        await SocketIo.ReadExactlyAsync(client, 1).WaitAsync(Timeout);
        var id = relay.Node.Circuits.Snapshot().Single().Id;
        client.Shutdown(SocketShutdown.Send);
        Assert.Equal("eof", await SocketIo.ReadUntilClosedAsync(client, Timeout));
        await Eventually.Holds(() => relay.Node.Circuits.Count == 0, "the circuit to close");
        return id;
    }

    private static bool IsEvent(JsonElement json, string name, long circuitId) =>
        json.TryGetProperty("EventName", out var e) && e.GetString() == name
        && json.TryGetProperty("CircuitId", out var id) && id.GetInt64() == circuitId;

}
