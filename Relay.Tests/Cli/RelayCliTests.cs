using System.Net;
using Relay.Actors.Configuration;
using Relay.Host.Cli;
using Relay.Host.Logging;

namespace Relay.Tests.Cli;

public sealed class RelayCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("relay-cli-tests-").FullName;
    private readonly RecordingHandlers _handlers = new();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string File(string name, string hocon)
    {
        var path = Path.Combine(_dir, name);
        System.IO.File.WriteAllText(path, hocon);
        return path;
    }

    private async Task<(int Code, string Out, string Err)> Relay(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await RelayCli.InvokeAsync(args, _handlers.Handlers, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private static void AssertOneLineError(string stderr, string startsWith)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var line = Assert.Single(lines);
        Assert.StartsWith(startsWith, line);
        Assert.DoesNotContain("   at ", stderr);
    }

    [Fact]
    public async Task Check_config_prints_the_effective_config_and_exits_0()
    {
        var path = File("ok.conf", """
            relay.routes = [ { name = web, listen = "0.0.0.0:8080", upstream = "198.18.1.2:80", write-size = 128k } ]
            """);

        var (code, stdout, stderr) = await Relay("check-config", path);

        Assert.Equal(0, code);
        Assert.Equal("", stderr);
        Assert.Contains("name = \"web\"", stdout);
        Assert.Contains("write-size = 128k", stdout);
        Assert.Contains("idle-timeout = 1h", stdout); // defaults filled in
    }

    [Fact]
    public async Task Check_config_layers_several_files_in_order()
    {
        var first = File("a.conf", "relay.defaults.idle-timeout = 10m");
        var second = File("b.conf", "relay.defaults.idle-timeout = 20m");

        var (code, stdout, _) = await Relay("check-config", first, second);

        Assert.Equal(0, code);
        Assert.Contains("idle-timeout = 20m", stdout);
    }

    [Fact]
    public async Task Check_config_with_a_bad_value_prints_one_line_naming_key_and_value_and_exits_2()
    {
        var path = File("bad.conf", """
            relay.routes = [ { listen = "0.0.0.0:8080", upstream = "198.18.1.2:80", window = 1k } ]
            """);

        var (code, stdout, stderr) = await Relay("check-config", path);

        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        AssertOneLineError(stderr, "relay: relay.routes[0].window = \"1k\": must be at least write-size (256 KiB)");
    }

    [Fact]
    public async Task Check_config_prints_half_closed_timeout_off_by_default_and_rejects_a_bad_one_in_one_line()
    {
        var good = File("half-closed.conf", """
            relay.routes = [ { name = web, listen = "0.0.0.0:8080", upstream = "198.18.1.2:80", half-closed-timeout = 2m } ]
            """);
        var bad = File("half-closed-bad.conf", "relay.defaults.half-closed-timeout = never");

        var (code, stdout, _) = await Relay("check-config", good);
        var (badCode, badStdout, stderr) = await Relay("check-config", bad);

        Assert.Equal(0, code);
        Assert.Contains("half-closed-timeout = 2m", stdout);  // the route
        Assert.Contains("half-closed-timeout = off", stdout); // the defaults
        Assert.Equal(2, badCode);
        Assert.Equal("", badStdout);
        AssertOneLineError(stderr, "relay: relay.defaults.half-closed-timeout = \"never\": must be off or a duration");
    }

    [Fact]
    public async Task Check_config_with_a_syntax_error_names_the_file_and_line_and_exits_2()
    {
        var path = File("broken.conf", "relay {\n  defaults {\n    write-size = 1k\n");

        var (code, _, stderr) = await Relay("check-config", path);

        Assert.Equal(2, code);
        AssertOneLineError(stderr, $"relay: {path}:2:");
    }

    [Fact]
    public async Task Check_config_with_a_missing_file_exits_2_naming_the_file()
    {
        var path = Path.Combine(_dir, "nope.conf");

        var (code, _, stderr) = await Relay("check-config", path);

        Assert.Equal(2, code);
        AssertOneLineError(stderr, $"relay: {path}: ");
    }

    [Fact]
    public async Task Check_config_without_a_file_is_a_usage_error()
    {
        var (code, _, stderr) = await Relay("check-config");

        Assert.Equal(2, code);
        AssertOneLineError(stderr, "relay: ");
    }

    [Fact]
    public async Task Version_prints_the_informational_version()
    {
        var (code, stdout, _) = await Relay("--version");

        Assert.Equal(0, code);
        Assert.Equal(RelayCli.Version, stdout.Trim());
        Assert.StartsWith("0.1.0", stdout.Trim()); // Directory.Build.props <Version>
    }

    [Fact]
    public async Task Help_lists_every_command_and_exits_0()
    {
        var (code, stdout, _) = await Relay("--help");

        Assert.Equal(0, code);
        foreach (var command in new[] { "run", "demo", "check-config", "status", "circuits", "handover" })
        {
            Assert.Contains(command, stdout);
        }
    }

    [Fact]
    public async Task Run_passes_validated_settings_and_the_full_config_to_the_handler()
    {
        var path = File("run.conf", """
            akka.loglevel = DEBUG
            relay.routes = [ { name = web, listen = "0.0.0.0:8080", upstream = "198.18.1.2:80" } ]
            relay.management.endpoint = "127.0.0.1:9000"
            """);

        var (code, _, stderr) = await Relay(
            "run", "--config", path, "--route", "api@127.0.0.1:0=[::1]:9001",
            "--management", "127.0.0.1:18558", "--management-token", "t0k", "--log-format", "json");

        Assert.Equal(0, code);
        Assert.Equal("", stderr);
        var run = Assert.Single(_handlers.Runs);
        Assert.Equal(["web", "api"], run.Settings.Routes.Select(r => r.Name));
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 18558), run.Settings.Management.Endpoint);
        Assert.Equal("t0k", run.Settings.Management.Token);
        Assert.Equal(LogFormat.Json, run.LogFormat);
        Assert.Equal("DEBUG", run.FullConfig.GetString("akka.loglevel"));
    }

    [Fact]
    public async Task Run_defaults_to_text_logs()
    {
        var (code, _, _) = await Relay("run", "--route", "127.0.0.1:0=127.0.0.1:9000");

        Assert.Equal(0, code);
        Assert.Equal(LogFormat.Text, Assert.Single(_handlers.Runs).LogFormat);
    }

    [Fact]
    public async Task Run_with_a_transparent_flag_adds_a_transparent_route_next_to_the_forward_ones()
    {
        var (code, _, _) = await Relay("run", "--route", "127.0.0.1:0=127.0.0.1:9000", "--transparent", "gw@0.0.0.0:15001");

        Assert.Equal(0, code);
        var routes = Assert.Single(_handlers.Runs).Settings.Routes;
        Assert.Null(routes[0].Transparent);
        Assert.Equal("gw", routes[1].Name);
        Assert.Equal(new IPEndPoint(IPAddress.Any, 15001), routes[1].Listen);
        Assert.Equal(Interception.Redirect, routes[1].Transparent!.Interception);
    }

    [Fact]
    public async Task Run_with_a_transparent_flag_that_names_an_upstream_exits_2()
    {
        var (code, _, stderr) = await Relay("run", "--transparent", "0.0.0.0:15001=198.18.2.2:80");

        Assert.Equal(2, code);
        AssertOneLineError(stderr, "relay: --transparent = \"0.0.0.0:15001=198.18.2.2:80\": a transparent route has no upstream");
        Assert.Empty(_handlers.Runs);
    }

    [Theory]
    [InlineData("relay: --route = \"0.0.0.0=198.18.1.2:80\"", "run", "--route", "0.0.0.0=198.18.1.2:80")]
    [InlineData("relay: --management = \"nowhere\"", "run", "--route", "127.0.0.1:0=127.0.0.1:9000", "--management", "nowhere")]
    [InlineData("relay: relay.routes: no routes", "run")]
    [InlineData("relay: --log-format = \"xml\": must be text or json", "run", "--route", "127.0.0.1:0=127.0.0.1:9000", "--log-format", "xml")]
    [InlineData("relay: Unrecognized command or argument '--bogus'", "run", "--bogus")]
    [InlineData("relay: Unrecognized command or argument 'launch'", "launch")]
    [InlineData("relay: ", "run", "--route")]
    [InlineData("relay: --seconds = \"0\"", "demo", "--seconds", "0")]
    [InlineData("relay: ", "demo", "--circuits", "many")]
    [InlineData("relay: --state = \"open\"", "circuits", "--state", "open")]
    [InlineData("relay: --management = \"ftp://x\"", "status", "--management", "ftp://x")]
    [InlineData("relay: --management = \"ftp://x\"", "handover", "--management", "ftp://x")]
    [InlineData("relay: Unrecognized command or argument 'extra'", "handover", "extra")]
    [InlineData("relay: ")]
    public async Task Bad_arguments_give_one_line_on_stderr_and_exit_2(string startsWith, params string[] args)
    {
        var (code, _, stderr) = await Relay(args);

        Assert.Equal(2, code);
        AssertOneLineError(stderr, startsWith);
        Assert.Empty(_handlers.Runs);
    }

    [Fact]
    public async Task A_config_error_raised_by_a_handler_is_reported_as_one_line_with_exit_2()
    {
        _handlers.RunError = new RelayConfigException("relay.routes[0].listen", "0.0.0.0:80", "cannot bind: permission denied");

        var (code, _, stderr) = await Relay("run", "--route", "0.0.0.0:80=127.0.0.1:9000");

        Assert.Equal(2, code);
        AssertOneLineError(stderr, "relay: relay.routes[0].listen = \"0.0.0.0:80\": cannot bind: permission denied");
    }

    [Fact]
    public async Task The_handler_exit_code_is_the_process_exit_code()
    {
        _handlers.ExitCode = 3;

        var (code, _, _) = await Relay("demo");

        Assert.Equal(3, code);
        Assert.Equal(new DemoRequest(5, 8, LogFormat.Text), Assert.Single(_handlers.Demos));
    }

    [Fact]
    public async Task Demo_passes_its_options()
    {
        var (code, _, _) = await Relay("demo", "--seconds", "2", "--circuits", "32", "--log-format", "json");

        Assert.Equal(0, code);
        Assert.Equal(new DemoRequest(2, 32, LogFormat.Json), Assert.Single(_handlers.Demos));
    }

    [Fact]
    public async Task Status_and_circuits_pass_the_management_url_and_filters()
    {
        await Relay("status");
        await Relay("circuits", "--management", "10.0.0.1:9000", "--route", "web", "--state", "half-closed");

        Assert.Equal(new StatusRequest(new Uri("http://127.0.0.1:8558"), null, null), _handlers.Statuses.Single());
        Assert.Equal(new StatusRequest(new Uri("http://10.0.0.1:9000"), "web", "half-closed"), _handlers.CircuitQueries.Single());
    }

    [Fact]
    public async Task Handover_passes_the_management_url_the_token_the_target_and_json()
    {
        await Relay("handover");
        await Relay("handover", "--management", "10.0.0.1:9000", "--management-token", "t", "--to", "akka.tcp://relay@198.18.0.3:2552", "--json");

        Assert.Equal(
            [
                new HandoverRequest(new Uri("http://127.0.0.1:8558"), Environment.GetEnvironmentVariable(RelayCli.TokenVariable), null, false),
                new HandoverRequest(new Uri("http://10.0.0.1:9000"), "t", "akka.tcp://relay@198.18.0.3:2552", true),
            ],
            _handlers.Handovers);
    }

    /// <summary>Records what each handler was asked to do.</summary>
    private sealed class RecordingHandlers
    {
        public List<RunRequest> Runs { get; } = [];

        public List<DemoRequest> Demos { get; } = [];

        public List<StatusRequest> Statuses { get; } = [];

        public List<StatusRequest> CircuitQueries { get; } = [];

        public List<HandoverRequest> Handovers { get; } = [];

        public int ExitCode { get; set; }

        public Exception? RunError { get; set; }

        public RelayCliHandlers Handlers => new(
            (request, _) =>
            {
                if (RunError is not null)
                {
                    throw RunError;
                }

                Runs.Add(request);
                return Task.FromResult(ExitCode);
            },
            (request, _) =>
            {
                Demos.Add(request);
                return Task.FromResult(ExitCode);
            },
            (request, _) =>
            {
                Statuses.Add(request);
                return Task.FromResult(ExitCode);
            },
            (request, _) =>
            {
                CircuitQueries.Add(request);
                return Task.FromResult(ExitCode);
            },
            (request, _) =>
            {
                Handovers.Add(request);
                return Task.FromResult(ExitCode);
            });
    }
}
