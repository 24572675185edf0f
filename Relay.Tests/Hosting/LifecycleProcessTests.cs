using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text.Json;
using Relay.Tests.Native;
using Relay.Tests.Support;
using static Relay.Tests.Support.Connections;

namespace Relay.Tests.Hosting;

/// <summary>
/// Graceful shutdown and reload of the real <c>relay</c> executable, driven the way an operator
/// (or systemd) does it: SIGTERM, a second SIGTERM, SIGHUP and <c>POST /reload</c>.
/// </summary>
public sealed class LifecycleProcessTests : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"relay-lifecycle-{Guid.NewGuid():N}");

    public LifecycleProcessTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Config(string text, string name = "relay.conf")
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>The relay executable with one route and <paramref name="grace"/>, and one circuit through it that has echoed.</summary>
    private async Task<(RelayProcess Relay, Socket Client)> StartWithOneOpenCircuitAsync(TestServer server, string grace)
    {
        var config = Config($$"""
            relay.shutdown-grace = {{grace}}
            relay.routes = [ { name = "idle", listen = "127.0.0.1:0", upstream = "{{server.Endpoint}}" } ]
            """);
        var relay = RelayProcess.Start("run", "--config", config, "--management", "off", "--log-format", "json");
        var listen = await ListenOfAsync(relay, "idle");
        var client = await SocketIo.ConnectAsync(listen);
        await client.SendAsync(new byte[10], SocketFlags.None);
        await SocketIo.ReadExactlyAsync(client, 10).WaitAsync(Wait);
        return (relay, client);
    }

    private static JsonElement Parse(string line) => JsonDocument.Parse(line).RootElement;

    private static async Task<IPEndPoint> ListenOfAsync(RelayProcess relay, string route, int nth = 1)
    {
        await Eventually.Holds(() => relay.Stdout.Count(l => l.Contains("\"ListenerBound\"") && l.Contains($"\"Route\":\"{route}\"")) >= nth,
            $"route {route} bound {nth} time(s)", Wait);
        var line = relay.Stdout.Where(l => l.Contains("\"ListenerBound\"") && l.Contains($"\"Route\":\"{route}\"")).ElementAt(nth - 1);
        return IPEndPoint.Parse(Parse(line).GetProperty("Listen").GetString()!);
    }

    [Fact]
    public async Task Sigterm_stops_accepting_at_once_lets_a_transfer_in_flight_finish_intact_and_exits_0()
    {
        await using var server = new TestServer(TestServer.Echo);
        var config = Config($$"""
            relay.shutdown-grace = 30s
            relay.routes = [ { name = "bulk", listen = "127.0.0.1:0", upstream = "{{server.Endpoint}}" } ]
            """);
        using var relay = RelayProcess.Start("run", "--config", config, "--management", "off", "--log-format", "json");
        var listen = await ListenOfAsync(relay, "bulk");

        using var client = await SocketIo.ConnectAsync(listen);
        const long Total = 48L * 64 * 1024;
        var (sent, received) = StartPacedTransfer(client, Total, paceMs: 40, seed: 7); // about 2 s
        await Eventually.Holds(() => server.Accepted == 1, "the relay to carry the transfer to its upstream");
        relay.Signal(Signal.SIGTERM);

        await Eventually.Holds(() => relay.Stdout.Any(l => l.Contains("\"RouteDraining\"")), "the listener to close", Wait);
        Assert.True(await RefusesAsync(listen), "a new connect after SIGTERM must be refused");
        Assert.False(received.IsCompleted, "the transfer should still be running after SIGTERM");

        var hash = await sent.WaitAsync(Wait);
        var (bytes, receivedHash) = await received.WaitAsync(Wait);
        Assert.Equal(Total, bytes);
        Assert.Equal(hash, receivedHash);

        Assert.Equal(0, await relay.WaitForExitAsync(Wait));
        var closed = Parse(relay.Stdout.Single(l => l.Contains("\"CircuitClosed\"")));
        Assert.Equal("complete", closed.GetProperty("Reason").GetString());
        var stopped = Parse(relay.Stdout.Single(l => l.Contains("\"RelayStopped\"")));
        Assert.Equal(1, stopped.GetProperty("Open").GetInt32());
        Assert.Equal(1, stopped.GetProperty("Finished").GetInt32());
        Assert.Equal(0, stopped.GetProperty("Reset").GetInt32());
    }

    [Fact]
    public async Task Circuits_still_open_when_the_grace_runs_out_are_reset_with_reason_shutdown()
    {
        await using var server = new TestServer(TestServer.Echo);
        var (relay, client) = await StartWithOneOpenCircuitAsync(server, "1s");
        using var _ = relay;
        using var __ = client;

        relay.Signal(Signal.SIGTERM);

        Assert.Equal("reset", await SocketIo.ReadUntilClosedAsync(client, Wait));
        Assert.Equal(0, await relay.WaitForExitAsync(Wait));
        var closed = Parse(relay.Stdout.Single(l => l.Contains("\"CircuitClosed\"")));
        Assert.Equal("shutdown", closed.GetProperty("Reason").GetString());
        var stopped = Parse(relay.Stdout.Single(l => l.Contains("\"RelayStopped\"")));
        Assert.Equal(1, stopped.GetProperty("Reset").GetInt32());
        Assert.Equal("the shutdown grace ran out", stopped.GetProperty("Why").GetString());
    }

    [Fact]
    public async Task A_second_sigterm_cuts_the_grace_short()
    {
        await using var server = new TestServer(TestServer.Echo);
        var (relay, client) = await StartWithOneOpenCircuitAsync(server, "10m");
        using var _ = relay;
        using var __ = client;

        relay.Signal(Signal.SIGTERM);
        await Eventually.Holds(() => relay.Stdout.Any(l => l.Contains("\"RouteDraining\"")), "the listener to close", Wait);
        relay.Signal(Signal.SIGTERM);

        Assert.Equal("reset", await SocketIo.ReadUntilClosedAsync(client, Wait));
        Assert.Equal(0, await relay.WaitForExitAsync(Wait));
        var stopped = Parse(relay.Stdout.Single(l => l.Contains("\"RelayStopped\"")));
        Assert.Equal(1, stopped.GetProperty("Reset").GetInt32());
        Assert.Equal("a second signal", stopped.GetProperty("Why").GetString());
    }

    [Fact]
    public async Task Sighup_reloads_the_config_file_without_cutting_a_transfer_and_rejects_a_bad_one_keeping_the_running_config()
    {
        await using var first = new TestServer(TestServer.Echo);
        await using var second = new TestServer(TestServer.Echo);
        var config = Config($$"""relay.routes = [ { name = "web", listen = "127.0.0.1:0", upstream = "{{first.Endpoint}}" } ]""");
        using var relay = RelayProcess.Start("run", "--config", config, "--management", "off", "--log-format", "json");
        var listen = await ListenOfAsync(relay, "web");

        using var client = await SocketIo.ConnectAsync(listen);
        const long Total = 40L * 64 * 1024;
        var (sent, received) = StartPacedTransfer(client, Total, paceMs: 40, seed: 7);
        await Eventually.Holds(() => first.Accepted == 1, "the relay to carry the transfer to its upstream");

        File.WriteAllText(config, $$"""
            relay.routes = [
              { name = "web", listen = "127.0.0.1:0", upstreams = [ "{{second.Endpoint}}" ] }
              { name = "extra", listen = "127.0.0.1:0", upstream = "{{second.Endpoint}}" }
            ]
            """);
        relay.Signal(Signal.SIGHUP);
        var reloaded = Parse(await relay.WaitForLineAsync(l => l.Contains("\"ConfigReloaded\""), Wait));
        Assert.Equal("SIGHUP", reloaded.GetProperty("Trigger").GetString());
        Assert.Equal("added extra; changed web", reloaded.GetProperty("Changes").GetString());
        Assert.Equal(listen, await ListenOfAsync(relay, "web", nth: 2)); // handed over: same port
        var extra = await ListenOfAsync(relay, "extra");

        using (var viaExtra = await SocketIo.ConnectAsync(extra))
        using (var viaWeb = await SocketIo.ConnectAsync(listen))
        {
            foreach (var socket in new[] { viaExtra, viaWeb })
            {
                await socket.SendAsync(new byte[5], SocketFlags.None);
                await SocketIo.ReadExactlyAsync(socket, 5).WaitAsync(Wait);
            }
        }

        Assert.Equal(2, second.Accepted);
        var hash = await sent.WaitAsync(Wait);
        var (bytes, receivedHash) = await received.WaitAsync(Wait);
        Assert.Equal(Total, bytes);
        Assert.Equal(hash, receivedHash);
        Assert.Equal(1, first.Accepted);

        File.WriteAllText(config, """relay.routes = [ { name = "web", listen = "127.0.0.1:0", upstream = "nope" } ]""");
        relay.Signal(Signal.SIGHUP);
        var rejected = Parse(await relay.WaitForLineAsync(l => l.Contains("\"ReloadRejected\""), Wait));
        Assert.StartsWith("relay.routes[0].upstream = \"nope\"", rejected.GetProperty("Problem").GetString());
        using (var still = await SocketIo.ConnectAsync(extra))
        {
            await still.SendAsync(new byte[5], SocketFlags.None);
            await SocketIo.ReadExactlyAsync(still, 5).WaitAsync(Wait);
        }

        relay.Signal(Signal.SIGTERM);
        Assert.Equal(0, await relay.WaitForExitAsync(Wait));
        Assert.DoesNotContain(relay.Stdout, l => l.Contains("\"CircuitClosed\"") && !l.Contains("\"complete\""));
    }

    [Fact]
    public async Task Sighup_reloads_a_relay_started_under_nohup_with_sighup_ignored()
    {
        // What the relay inherits from nohup: SIGHUP ignored (bit 1 of SigIgn in /proc/PID/status).
        var probe = await ExternalProcess.RunAsync("nohup", ["sh", "-c", "grep ^SigIgn: /proc/self/status"], null, Wait);
        Assert.Equal(0, probe.Exit);
        Assert.True((Convert.ToUInt64(probe.Stdout.Split(':')[1].Trim(), 16) & 1) == 1, $"nohup did not ignore SIGHUP: {probe.Stdout}");

        await using var server = new TestServer(TestServer.Echo);
        var config = Config($$"""relay.routes = [ { name = "web", listen = "127.0.0.1:0", upstream = "{{server.Endpoint}}" } ]""");
        using var relay = RelayProcess.StartUnderNohup("run", "--config", config, "--management", "off", "--log-format", "json");
        await ListenOfAsync(relay, "web");

        File.WriteAllText(config, $$"""
            relay.routes = [
              { name = "web", listen = "127.0.0.1:0", upstream = "{{server.Endpoint}}" }
              { name = "extra", listen = "127.0.0.1:0", upstream = "{{server.Endpoint}}" }
            ]
            """);
        relay.Signal(Signal.SIGHUP);

        var reloaded = Parse(await relay.WaitForLineAsync(l => l.Contains("\"ConfigReloaded\""), Wait));
        Assert.Equal("SIGHUP", reloaded.GetProperty("Trigger").GetString());
        Assert.Equal("added extra", reloaded.GetProperty("Changes").GetString());
        using (var viaExtra = await SocketIo.ConnectAsync(await ListenOfAsync(relay, "extra")))
        {
            await viaExtra.SendAsync(new byte[5], SocketFlags.None);
            await SocketIo.ReadExactlyAsync(viaExtra, 5).WaitAsync(Wait);
        }

        relay.Signal(Signal.SIGTERM);
        Assert.Equal(0, await relay.WaitForExitAsync(Wait));
    }

    [Fact]
    public async Task Post_reload_needs_the_token_and_answers_the_changes_or_422_for_a_bad_config()
    {
        await using var server = new TestServer(TestServer.Echo);
        var config = Config($$"""relay.routes = [ { name = "web", listen = "127.0.0.1:0", upstream = "{{server.Endpoint}}" } ]""");
        using var relay = RelayProcess.Start("run", "--config", config, "--management", "127.0.0.1:0", "--management-token", "s3cret",
            "--log-format", "json");
        var management = Parse(await relay.WaitForLineAsync(l => l.Contains("\"ManagementListening\""), Wait))
            .GetProperty("ManagementAddress").GetString()!;
        using var http = new HttpClient { BaseAddress = new Uri(management) };

        using (var anonymous = await http.PostAsync("/reload", null))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }

        File.WriteAllText(config, $$"""relay.routes = [ { name = "web", listen = "127.0.0.1:0", upstream = "{{server.Endpoint}}", balance = least-circuits } ]""");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/reload");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "s3cret");
        using (var ok = await http.SendAsync(request))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            var body = JsonDocument.Parse(await ok.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("reloaded", body.GetProperty("status").GetString());
            Assert.Equal(["web"], body.GetProperty("changed").EnumerateArray().Select(e => e.GetString()));
        }

        File.WriteAllText(config, """relay.routes = [ { name = "web", listen = "127.0.0.1:0", upstream = "127.0.0.1:1", balance = fastest } ]""");
        using var again = new HttpRequestMessage(HttpMethod.Post, "/reload");
        again.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "s3cret");
        using (var bad = await http.SendAsync(again))
        {
            Assert.Equal(HttpStatusCode.UnprocessableEntity, bad.StatusCode);
            var error = JsonDocument.Parse(await bad.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString();
            Assert.Contains("relay.routes[0].balance = \"fastest\": must be round-robin or least-circuits", error);
        }

        var routes = JsonDocument.Parse(await http.GetStringAsync("/routes")).RootElement;
        Assert.Equal("least-circuits", routes[0].GetProperty("balance").GetString());

        relay.Signal(Signal.SIGTERM);
        Assert.Equal(0, await relay.WaitForExitAsync(Wait));
    }
}
