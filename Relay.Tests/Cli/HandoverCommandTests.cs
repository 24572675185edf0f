using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Relay.Tests.Hosting;
using Relay.Tests.Support;

namespace Relay.Tests.Cli;

/// <summary>
/// <c>relay handover</c> as a real process: against a real relay's management endpoint for
/// the token and the node's refusals, and against a one-shot HTTP server that answers a
/// handover outcome, for how each outcome reads and exits (the completed path through a real
/// cluster is in <c>RollingRestartLabTests</c>).
/// </summary>
public sealed class HandoverCommandTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Against_a_node_the_token_comes_from_the_flag_or_the_environment_and_a_refusal_is_one_line_and_exit_1()
    {
        await using var server = new TestServer(TestServer.Echo);
        using var relay = RelayProcess.Start("run", "--route", $"web@127.0.0.1:0={server.Endpoint}",
            "--management", "127.0.0.1:0", "--management-token", "s3cret", "--log-format", "json");
        var mgmt = JsonDocument.Parse(await relay.WaitForLineAsync(l => l.Contains("\"ManagementListening\""), Wait)).RootElement
            .GetProperty("ManagementAddress").GetString()!;

        var (noToken, _, noTokenErr) = await RelayProcess.RunAsync(Wait, "handover", "--management", mgmt);
        var (wrong, _, wrongErr) = await RelayProcess.RunAsync(Wait, "handover", "--management", mgmt, "--management-token", "guess");
        var (right, rightOut, rightErr) = await RelayProcess.RunAsync(Wait, "handover", "--management", mgmt, "--management-token", "s3cret");
        using var fromEnvironment = RelayProcess.StartWithEnvironment(
            new Dictionary<string, string> { ["RELAY_MANAGEMENT_TOKEN"] = "s3cret" }, "handover", "--management", mgmt, "--to", "198.18.0.3");
        var environmentCode = await fromEnvironment.WaitForExitAsync(Wait);

        Assert.Equal(1, noToken);
        Assert.StartsWith("relay: POST /cluster/handover answered 401: POST /cluster/handover needs 'Authorization: Bearer <token>'", Assert.Single(noTokenErr));
        Assert.Equal(1, wrong);
        Assert.StartsWith("relay: POST /cluster/handover answered 401: the bearer token", Assert.Single(wrongErr));
        // The token was right: the node itself says why it cannot hand over.
        Assert.Equal(1, right);
        Assert.Empty(rightOut);
        Assert.StartsWith("relay: POST /cluster/handover answered 404: this node is not clustered", Assert.Single(rightErr));
        Assert.Equal(1, environmentCode);
        Assert.StartsWith("relay: POST /cluster/handover answered 404: this node is not clustered", Assert.Single(fromEnvironment.Stderr));
    }

    [Fact]
    public async Task An_unreachable_endpoint_is_one_line_and_exit_1()
    {
        var closed = Endpoints.ClosedPort();

        var (code, _, stderr) = await RelayProcess.RunAsync(Wait, "handover", "--management", $"127.0.0.1:{closed}", "--management-token", "t");

        Assert.Equal(1, code);
        Assert.StartsWith($"relay: cannot reach the management endpoint http://127.0.0.1:{closed}/", Assert.Single(stderr));
    }

    [Fact]
    public async Task A_completed_handover_is_one_line_on_stdout_and_exit_0_and_the_request_names_the_target_and_carries_the_token()
    {
        const string Completed = """{"result":"completed","detail":"12 circuit(s) moved to akka.tcp://relay@198.18.0.3:2552","target":"akka.tcp://relay@198.18.0.3:2552","moved":12,"stayed":1,"reset":0,"bytesMoved":2097152,"pauseMs":14.24,"busyPauseMs":6.06}""";
        using var node = new OneShotHttp(200, Completed);

        var (code, stdout, stderr) = await RelayProcess.RunAsync(Wait, "handover", "--management", node.Url, "--management-token", "t0k", "--to", "198.18.0.3");
        var request = await node.Request;

        Assert.Equal(0, code);
        Assert.Empty(stderr);
        Assert.Equal("handover completed: 12 circuit(s) moved to akka.tcp://relay@198.18.0.3:2552; 1 stayed, 0 reset, 2.0MB of queues moved, paused 6.1 ms (busy circuits), 14.2 ms (all)",
            Assert.Single(stdout));
        Assert.StartsWith("POST /cluster/handover HTTP/1.1", request);
        Assert.Contains("\r\nAuthorization: Bearer t0k\r\n", request);
        Assert.EndsWith("\r\n\r\nto=198.18.0.3", request);
    }

    [Theory]
    [InlineData("rolled-back", "akka.tcp://relay@198.18.0.3:2552 did not hold the circuits within 5 s")]
    [InlineData("failed", "198.18.0.9 is not an Up member other than this node (members: akka.tcp://relay@198.18.0.3:2552)")]
    public async Task A_handover_not_done_is_one_line_on_stderr_and_exit_3_and_json_prints_the_outcome(string result, string detail)
    {
        var body = JsonSerializer.Serialize(new { result, detail, target = (string?)null, moved = 0, stayed = 12, reset = 0, bytesMoved = 0, pauseMs = 5003.1 });
        using var plain = new OneShotHttp(409, body);
        using var json = new OneShotHttp(409, body);

        var (code, stdout, stderr) = await RelayProcess.RunAsync(Wait, "handover", "--management", plain.Url, "--management-token", "t");
        var (jsonCode, jsonOut, _) = await RelayProcess.RunAsync(Wait, "handover", "--management", json.Url, "--management-token", "t", "--json");
        var request = await plain.Request;

        Assert.Equal(3, code);
        Assert.Empty(stdout);
        Assert.Equal($"relay: handover {result}: {detail} (0 moved, 12 stayed, 0 reset)", Assert.Single(stderr));
        Assert.EndsWith("\r\n\r\n", request); // no target: the node picks the oldest other member
        Assert.Equal(3, jsonCode);
        Assert.Equal(result, JsonDocument.Parse(Assert.Single(jsonOut)).RootElement.GetProperty("result").GetString());
    }

    [Fact]
    public async Task An_empty_target_is_a_usage_error()
    {
        var (code, _, stderr) = await RelayProcess.RunAsync(Wait, "handover", "--to", " ");

        Assert.Equal(2, code);
        Assert.StartsWith("relay: --to = \" \": must name a member", Assert.Single(stderr));
    }

    /// <summary>Answers one HTTP request with a canned status and JSON body, and keeps the request's text.</summary>
    private sealed class OneShotHttp : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);

        public OneShotHttp(int status, string body)
        {
            _listener.Start();
            Url = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";
            Request = ServeAsync(status, body);
        }

        public string Url { get; }

        public Task<string> Request { get; }

        private async Task<string> ServeAsync(int status, string body)
        {
            using var client = await _listener.AcceptTcpClientAsync();
            var stream = client.GetStream();
            var received = new MemoryStream();
            var buffer = new byte[4096];
            string text;
            while (true)
            {
                var n = await stream.ReadAsync(buffer);
                if (n == 0)
                {
                    throw new IOException("the client closed before its request ended");
                }

                received.Write(buffer, 0, n);
                text = Encoding.ASCII.GetString(received.ToArray());
                var head = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
                if (head < 0)
                {
                    continue;
                }

                var length = text[..head].Split("\r\n").Where(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
                    .Select(l => int.Parse(l[15..].Trim())).FirstOrDefault();
                if (text.Length >= head + 4 + length)
                {
                    break;
                }
            }

            var payload = Encoding.UTF8.GetBytes(body);
            var response = $"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {payload.Length}\r\nConnection: close\r\n\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(response).Concat(payload).ToArray());
            return text;
        }

        public void Dispose() => _listener.Stop();
    }
}
