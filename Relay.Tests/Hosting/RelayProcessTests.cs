using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Relay.Tests.Native;
using Relay.Tests.Support;

namespace Relay.Tests.Hosting;

/// <summary>
/// The <c>relay</c> executable as an operator meets it: exit codes, one-line errors with no
/// stack trace, CLEF log events with their properties, and a clean stop on SIGTERM.
/// </summary>
public sealed class RelayProcessTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Run_relays_bytes_logs_circuit_events_as_clef_and_stops_cleanly_on_sigterm()
    {
        await using var server = new TestServer(TestServer.Echo);
        using var relay = RelayProcess.Start("run", "--route", $"echo@127.0.0.1:0={server.Endpoint}",
            "--management", "off", "--log-format", "json");

        var bound = JsonDocument.Parse(await relay.WaitForLineAsync(l => l.Contains("\"ListenerBound\""), Wait)).RootElement;
        var listen = IPEndPoint.Parse(bound.GetProperty("Listen").GetString()!);
        using (var client = await SocketIo.ConnectAsync(listen))
        {
            var sent = await SocketIo.SendRandomAsync(client, 1_000_000, seed: 5);
            client.Shutdown(SocketShutdown.Send);
            var (bytes, hash) = await SocketIo.ReadToEndAsync(client).WaitAsync(Wait);
            Assert.Equal(1_000_000, bytes);
            Assert.Equal(sent, hash);
        }

        var closed = JsonDocument.Parse(await relay.WaitForLineAsync(l => l.Contains("\"CircuitClosed\""), Wait)).RootElement;
        Assert.Equal("echo", closed.GetProperty("Route").GetString());
        Assert.Equal("complete", closed.GetProperty("Reason").GetString());
        Assert.Equal(1_000_000, closed.GetProperty("BytesUp").GetInt64());
        Assert.Equal(1_000_000, closed.GetProperty("BytesDown").GetInt64());
        Assert.Equal(server.Endpoint.ToString(), closed.GetProperty("Upstream").GetString());
        Assert.True(closed.GetProperty("CircuitId").GetInt64() >= 1);
        Assert.True(closed.GetProperty("DurationMs").GetInt64() >= 0);
        Assert.StartsWith("127.0.0.1:", closed.GetProperty("Client").GetString());

        relay.Signal(Signal.SIGTERM);
        Assert.Equal(0, await relay.WaitForExitAsync(Wait));
        Assert.Contains(relay.Stdout, l => l.Contains("\"RelayStopping\"") && l.Contains("SIGTERM"));
        Assert.All(relay.Stdout, line => JsonDocument.Parse(line)); // every stdout line is one CLEF object
    }

    [LinuxTheory] // the re-exec is Linux-only, and so is /proc
    [InlineData(null, "0x1000000")]            // nothing set: the relay sets its gen0 floor (GcBudget)
    [InlineData("DOTNET_GCgen0size", "0x2000000")] // the operator's own budget wins
    [InlineData("RELAY_GC_TUNING", null)]      // opted out (off): the runtime's default
    public async Task The_relay_runs_with_its_gen0_budget_in_place_unless_the_operator_set_one_or_opted_out(string? preset, string? expected)
    {
        var environment = preset switch
        {
            "DOTNET_GCgen0size" => new Dictionary<string, string> { ["DOTNET_GCgen0size"] = "0x2000000" },
            "RELAY_GC_TUNING" => new Dictionary<string, string> { ["RELAY_GC_TUNING"] = "off" },
            _ => new Dictionary<string, string>(),
        };
        await using var server = new TestServer(TestServer.Echo);
        using var relay = RelayProcess.StartWithEnvironment(environment, "run", "--route", $"echo@127.0.0.1:0={server.Endpoint}",
            "--management", "off", "--log-format", "json");

        // The process the test started is the relay itself: execve kept its PID.
        await relay.WaitForLineAsync(l => l.Contains("\"RelayStarted\""), Wait);
        var running = relay.Environment();
        Assert.Equal(expected, running.GetValueOrDefault("DOTNET_GCgen0size"));
        Assert.Equal(preset is null ? "applied" : preset == "RELAY_GC_TUNING" ? "off" : null, running.GetValueOrDefault("RELAY_GC_TUNING"));
        // dotnet-counters and dotnet-trace can attach: one diagnostics socket for the PID, and
        // it answers (the replaced runtime's socket file would refuse them). The runtime names
        // it by PID and the process's start time; a file with the same PID and another start
        // time is an earlier process's, killed before it could remove it (PIDs wrap at 32768
        // here, and the suite kills relays with SIGKILL), so only this process's count.
        var diagnostics = Directory.GetFiles(Path.GetTempPath(), $"dotnet-diagnostic-{relay.Id}-{StartTimeTicks(relay.Id)}-socket");
        var socketFile = Assert.Single(diagnostics);
        using (var probe = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream,
                   System.Net.Sockets.ProtocolType.Unspecified))
        {
            await probe.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(socketFile));
        }

        relay.Signal(Signal.SIGTERM);
        Assert.Equal(0, await relay.WaitForExitAsync(Wait));
        Assert.Single(relay.Stdout, l => l.Contains("\"RelayStarted\"")); // one start, not two
    }

    /// <summary>The process's start time in clock ticks since boot (/proc/PID/stat, field 22), as the runtime puts it in its diagnostics socket's name.</summary>
    private static string StartTimeTicks(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        // Fields after the command, which is in parentheses and may hold spaces: state is field 3.
        return stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[22 - 3];
    }

    [Fact]
    public async Task Status_and_circuits_print_tables_from_a_live_node_and_the_log_file_rolls_its_events()
    {
        var release = new TaskCompletionSource();
        await using var server = new TestServer(async socket =>
        {
            await release.Task;
            await TestServer.Echo(socket);
        });
        var logDir = Path.Combine(Path.GetTempPath(), $"relay-log-{Guid.NewGuid():N}");
        Directory.CreateDirectory(logDir);
        try
        {
            using var relay = RelayProcess.Start("run", "--route", $"web@127.0.0.1:0={server.Endpoint}",
                "--management", "127.0.0.1:0", "--log-format", "json", "--log-file", Path.Combine(logDir, "relay-.clef"));
            var bound = JsonDocument.Parse(await relay.WaitForLineAsync(l => l.Contains("\"ListenerBound\""), Wait)).RootElement;
            var listen = IPEndPoint.Parse(bound.GetProperty("Listen").GetString()!);
            var mgmt = JsonDocument.Parse(await relay.WaitForLineAsync(l => l.Contains("\"ManagementListening\""), Wait)).RootElement
                .GetProperty("ManagementAddress").GetString()!;

            using var client = await SocketIo.ConnectAsync(listen);
            await client.SendAsync(new byte[1000], SocketFlags.None);
            var (circuitsCode, circuitsOut, _) = await RelayProcess.RunAsync(Wait, "circuits", "--management", mgmt);
            var (statusCode, statusOut, _) = await RelayProcess.RunAsync(Wait, "status", "--management", mgmt);

            Assert.Equal(0, circuitsCode);
            Assert.Contains(circuitsOut, l => l.Contains(" web ") && l.Contains(server.Endpoint.ToString()) && (l.Contains("established") || l.Contains("connecting")));
            Assert.Contains("1 circuit(s)", circuitsOut);
            Assert.Equal(0, statusCode);
            Assert.Contains("ready      yes", statusOut);
            Assert.Contains(statusOut, l => l.StartsWith("web ", StringComparison.Ordinal) && l.Contains("listening") && l.Contains(listen.ToString()));

            release.SetResult();
            client.Shutdown(SocketShutdown.Send);
            Assert.Equal(1000, (await SocketIo.ReadToEndAsync(client).WaitAsync(Wait)).Bytes);
            await relay.WaitForLineAsync(l => l.Contains("\"CircuitClosed\""), Wait);
            relay.Signal(Signal.SIGTERM);
            Assert.Equal(0, await relay.WaitForExitAsync(Wait));

            var file = Assert.Single(Directory.GetFiles(logDir));
            var lines = await File.ReadAllLinesAsync(file);
            Assert.Contains(lines, l => l.Contains("\"CircuitClosed\"") && l.Contains("\"complete\""));
            Assert.All(lines, line => JsonDocument.Parse(line));
        }
        finally
        {
            Directory.Delete(logDir, recursive: true);
        }
    }

    [Fact]
    public async Task Status_against_an_unreachable_endpoint_exits_1_with_one_line()
    {
        var closed = Endpoints.ClosedPort();

        var (code, _, stderr) = await RelayProcess.RunAsync(Wait, "status", "--management", $"127.0.0.1:{closed}");

        Assert.Equal(1, code);
        Assert.StartsWith($"relay: cannot reach the management endpoint http://127.0.0.1:{closed}/", Assert.Single(stderr));
    }

    [Fact]
    public async Task ProxyHeaderRejected_in_the_text_log_reads_like_every_other_event_without_an_actor_path()
    {
        var file = Path.Combine(Path.GetTempPath(), $"relay-proxy-{Guid.NewGuid():N}.conf");
        await File.WriteAllTextAsync(file, """
            relay.routes = [ { name = "web", listen = "127.0.0.1:0", upstream = "127.0.0.1:9", accept-proxy-protocol = on } ]
            """);
        try
        {
            using var relay = RelayProcess.Start("run", "--config", file, "--management", "off");
            var bound = await relay.WaitForLineAsync(l => l.Contains(" ListenerBound "), Wait);
            var listen = IPEndPoint.Parse(bound.Split(" listening on ")[1].Split(',')[0]);

            using (var client = await SocketIo.ConnectAsync(listen))
            {
                await client.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray(), SocketFlags.None);
                Assert.Equal("reset", await SocketIo.ReadUntilClosedAsync(client, Wait));
            }

            var line = await relay.WaitForLineAsync(l => l.Contains("ProxyHeaderRejected"), Wait);
            Assert.Matches($@"^\S+Z WRN ProxyHeaderRejected route web reset 127\.0\.0\.1:\d+: bad PROXY protocol header: ", line);
            Assert.DoesNotContain(relay.Stdout, l => l.Contains("[/user/"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task A_port_in_use_exits_1_with_one_line_on_stderr_no_stack_trace_and_a_log_that_says_1()
    {
        using var occupant = Endpoints.Occupy();
        var taken = occupant.LocalEndPoint!.ToString();

        var (code, stdout, stderr) = await RelayProcess.RunAsync(Wait, "run", "--route", $"web@{taken}=127.0.0.1:9", "--management", "off");

        Assert.Equal(1, code);
        var line = Assert.Single(stderr);
        Assert.Equal($"relay: route web: cannot listen on {taken}: address already in use", line);
        Assert.DoesNotContain(stdout.Concat(stderr), l => l.TrimStart().StartsWith("at ", StringComparison.Ordinal));
        AssertLastLogLineSaysExitCode(1, stdout);
    }

    [Fact]
    public async Task A_management_endpoint_in_use_exits_1_with_one_line_and_a_log_that_says_1()
    {
        using var occupant = Endpoints.Occupy();
        var taken = occupant.LocalEndPoint!.ToString();

        var (code, stdout, stderr) = await RelayProcess.RunAsync(Wait, "run", "--route", "127.0.0.1:0=127.0.0.1:9", "--management", taken!);

        Assert.Equal(1, code);
        Assert.Equal($"relay: management endpoint {taken} is already in use", Assert.Single(stderr));
        AssertLastLogLineSaysExitCode(1, stdout);
    }

    [Fact]
    public async Task A_cluster_node_downed_by_the_operator_exits_3_as_its_log_says()
    {
        // A one-node cluster that joins itself; downed, Akka shuts it down with its code 3.
        var remoting = Endpoints.ClosedPort();
        var self = $"akka.tcp://relay@127.0.0.1:{remoting}";
        var file = Path.Combine(Path.GetTempPath(), $"relay-downed-{Guid.NewGuid():N}.conf");
        await File.WriteAllTextAsync(file, $$"""
            relay {
              routes = [ { name = "web", listen = "127.0.0.1:0", upstream = "127.0.0.1:9" } ]
              management { endpoint = "127.0.0.1:0", token = "t" }
              cluster.enabled = on
            }
            akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = {{remoting}} }
            akka.cluster.seed-nodes = ["{{self}}"]
            """);
        try
        {
            using var relay = RelayProcess.Start("run", "--config", file);
            var listening = await relay.WaitForLineAsync(l => l.Contains(" ManagementListening "), Wait);
            await relay.WaitForLineAsync(l => l.Contains(" ServiceTakenOver "), Wait);
            using var http = new HttpClient { BaseAddress = new Uri(listening[(listening.LastIndexOf(' ') + 1)..]) };
            using var down = new HttpRequestMessage(HttpMethod.Put, "/cluster/members/" + self)
            {
                Content = new FormUrlEncodedContent([new KeyValuePair<string, string>("operation", "Down")]),
            };
            down.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "t");
            using (var answer = await http.SendAsync(down))
            {
                Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            }

            Assert.Equal(3, await relay.WaitForExitAsync(Wait));
            Assert.Contains(relay.Stdout, l => l.EndsWith("Exiting with [ExitCode:3].", StringComparison.Ordinal));
            Assert.DoesNotContain(relay.Stdout, l => l.Contains("[ExitCode:") && !l.Contains("[ExitCode:3]"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>Akka's shutdown line, the log's last, names an exit code: the process's own.</summary>
    private static void AssertLastLogLineSaysExitCode(int code, string[] stdout)
    {
        Assert.NotEmpty(stdout);
        Assert.EndsWith($"Exiting with [ExitCode:{code}].", stdout[^1]);
        Assert.DoesNotContain(stdout, l => l.Contains("[ExitCode:") && !l.Contains($"[ExitCode:{code}]"));
    }

    [Theory]
    [InlineData("--route", "127.0.0.1:0=nowhere", "--route")]
    [InlineData("--route", "127.0.0.1:99999=127.0.0.1:80", "--route")]
    [InlineData("--log-format", "xml", "xml")]
    public async Task Bad_arguments_exit_2_with_one_line_naming_the_problem(string option, string value, string named)
    {
        var (code, _, stderr) = await RelayProcess.RunAsync(Wait, "run", option, value, "--management", "off");

        Assert.Equal(2, code);
        Assert.Contains(named, Assert.Single(stderr, l => l.Length > 0));
    }

    [Fact]
    public async Task A_log_file_in_a_missing_directory_exits_2_naming_the_option()
    {
        var path = Path.Combine(Path.GetTempPath(), $"relay-missing-{Guid.NewGuid():N}", "relay.log");

        var (code, _, stderr) = await RelayProcess.RunAsync(Wait, "run", "--route", "127.0.0.1:0=127.0.0.1:9",
            "--management", "off", "--log-file", path);

        Assert.Equal(2, code);
        var line = Assert.Single(stderr);
        Assert.Contains("--log-file", line);
        Assert.Contains("does not exist", line);
    }

    [Fact]
    public async Task A_bad_config_file_exits_2_naming_the_key_and_value()
    {
        var file = Path.Combine(Path.GetTempPath(), $"relay-bad-{Guid.NewGuid():N}.conf");
        await File.WriteAllTextAsync(file, "relay.defaults.idle-timeout = soon\n");
        try
        {
            var (code, _, stderr) = await RelayProcess.RunAsync(Wait, "check-config", file);

            Assert.Equal(2, code);
            var line = Assert.Single(stderr);
            Assert.Contains("relay.defaults.idle-timeout", line);
            Assert.Contains("soon", line);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Demo_pushes_traffic_and_reports_every_byte_intact()
    {
        var (code, stdout, stderr) = await RelayProcess.RunAsync(Wait, "demo", "--seconds", "2", "--circuits", "4");

        Assert.True(code == 0, string.Join('\n', stdout.Concat(stderr)));
        Assert.Contains(stdout, l => l.Contains("every byte echoed intact"));
        Assert.Contains(stdout, l => l.Contains("core 0"));
        Assert.Contains(stdout, l => l.Contains("core 1"));
    }
}
