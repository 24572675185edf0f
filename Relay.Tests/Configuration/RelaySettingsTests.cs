using System.Net;
using Akka.Configuration;
using Relay.Actors.Configuration;

namespace Relay.Tests.Configuration;

public class RelaySettingsTests
{
    private const string Route = "listen = \"0.0.0.0:7000\", upstream = \"198.18.1.2:7000\"";

    private static RelaySettings FromHocon(string hocon) => RelaySettings.Create(ConfigurationFactory.ParseString(hocon));

    private static RelayConfigException Rejected(string hocon) =>
        Assert.Throws<RelayConfigException>(() => FromHocon(hocon));

    [Fact]
    public void Embedded_defaults_load_and_equal_the_documented_values()
    {
        var settings = RelaySettings.Create(RelayConfigLoader.EmbeddedDefaults);

        var keepAlive = new KeepAliveSettings(true, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(10), 5);
        var side = new SocketSideSettings(null, null, true, null, null, keepAlive);
        Assert.Empty(settings.Routes);
        Assert.Equal(
            new CircuitSettings(TimeSpan.FromSeconds(5), TimeSpan.FromHours(1), null, 256 * 1024, 1024 * 1024, side, side) { NullCircuits = NullCircuits.Quiet },
            settings.Defaults);
        Assert.Equal(new DispatcherSettings(Environment.ProcessorCount, false, 64), settings.Dispatchers);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 8558), settings.Management.Endpoint);
        Assert.Equal("", settings.Management.Token);
    }

    [Fact]
    public void Every_key_in_the_reference_config_has_a_comment_above_it()
    {
        var lines = RelayConfigLoader.EmbeddedDefaultsText.Split('\n');
        var previous = "";
        var keys = 0;
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (line.Length == 0)
            {
                continue;
            }

            var isKey = !line.StartsWith('#') && !line.StartsWith('}') && line != "relay {";
            if (isKey)
            {
                keys++;
                Assert.True(previous.StartsWith('#'), $"key line '{line}' has no comment above it");
            }

            previous = line;
        }

        Assert.True(keys > 30, $"only {keys} keys found");
    }

    [Fact]
    public void A_config_with_only_routes_gets_every_default()
    {
        var settings = FromHocon($"relay.routes = [ {{ {Route} }} ]");

        var route = Assert.Single(settings.Routes);
        Assert.Equal("route-1", route.Name);
        Assert.Equal(new IPEndPoint(IPAddress.Any, 7000), route.Listen);
        Assert.Equal(new UpstreamAddress("198.18.1.2", 7000), route.Upstreams.Members.Single());
        Assert.Equal(1024, route.Backlog);
        Assert.Equal(settings.Defaults, route.Circuit);
    }

    [Fact]
    public void Route_overrides_apply_to_that_route_and_other_keys_fall_back_to_defaults()
    {
        var settings = FromHocon($$"""
            relay.defaults.idle-timeout = 10m
            relay.routes = [
              { name = "jumbo-out", {{Route}}, write-size = 256k, window = 1m, backlog = 50
                client-side { no-delay = off, keepalive { count = 3 } }
                upstream-side { receive-buffer = 4m, congestion = reno, max-segment = 8960 } }
              { name = "plain", listen = "0.0.0.0:7001", upstream = "198.18.1.2:7001" }
            ]
            """);

        var jumbo = settings.Routes[0].Circuit;
        Assert.Equal(256 * 1024, jumbo.WriteSize);
        Assert.Equal(1024 * 1024, jumbo.Window);
        Assert.Equal(50, settings.Routes[0].Backlog);
        Assert.Equal(TimeSpan.FromMinutes(10), jumbo.IdleTimeout);
        Assert.Equal(TimeSpan.FromSeconds(5), jumbo.ConnectTimeout);
        Assert.False(jumbo.ClientSide.NoDelay);
        Assert.Equal(3, jumbo.ClientSide.KeepAlive.Count);
        Assert.Equal(TimeSpan.FromSeconds(60), jumbo.ClientSide.KeepAlive.Idle);
        Assert.True(jumbo.ClientSide.KeepAlive.Enabled);
        Assert.Equal(4 * 1024 * 1024, jumbo.UpstreamSide.ReceiveBuffer);
        Assert.Null(jumbo.UpstreamSide.SendBuffer);
        Assert.Equal("reno", jumbo.UpstreamSide.Congestion);
        Assert.Equal(8960, jumbo.UpstreamSide.MaxSegment);
        Assert.Null(jumbo.ClientSide.Congestion);

        Assert.Equal(settings.Defaults, settings.Routes[1].Circuit);
        Assert.Equal(TimeSpan.FromMinutes(10), settings.Defaults.IdleTimeout);
    }

    [Fact]
    public void Unnamed_routes_are_named_by_their_position()
    {
        var settings = FromHocon("""
            relay.routes = [
              { listen = "0.0.0.0:7000", upstream = "198.18.1.2:7000" }
              { name = web, listen = "0.0.0.0:7001", upstream = "198.18.1.2:7001" }
              { listen = "0.0.0.0:7002", upstream = "198.18.1.2:7002" }
            ]
            """);

        Assert.Equal(["route-1", "web", "route-3"], settings.Routes.Select(r => r.Name));
    }

    [Theory]
    [InlineData("*:7000", "0.0.0.0", 7000)]
    [InlineData(":7000", "0.0.0.0", 7000)]
    [InlineData("127.0.0.1:0", "127.0.0.1", 0)]
    [InlineData("[::1]:7000", "::1", 7000)]
    [InlineData("[::]:65535", "::", 65535)]
    public void Listen_accepts_ipv4_ipv6_and_wildcard_forms(string listen, string address, int port)
    {
        var settings = FromHocon($"relay.routes = [ {{ listen = \"{listen}\", upstream = \"198.18.1.2:7000\" }} ]");

        Assert.Equal(new IPEndPoint(IPAddress.Parse(address), port), settings.Routes[0].Listen);
    }

    [Theory]
    [InlineData("backend.example:443", "backend.example", 443)]
    [InlineData("198.18.1.2:1", "198.18.1.2", 1)]
    [InlineData("[2001:db8::5]:7001", "2001:db8::5", 7001)]
    [InlineData("localhost:65535", "localhost", 65535)]
    public void Upstream_accepts_names_and_ip_literals(string upstream, string host, int port)
    {
        var settings = FromHocon($"relay.routes = [ {{ listen = \"0.0.0.0:7000\", upstream = \"{upstream}\" }} ]");

        Assert.Equal(new UpstreamAddress(host, port), settings.Routes[0].Upstreams.Members.Single());
        Assert.Equal(upstream, settings.Routes[0].Upstreams.Members.Single().ToString());
    }

    [Fact]
    public void Routes_listening_on_port_zero_never_clash()
    {
        var settings = FromHocon("""
            relay.routes = [
              { listen = "127.0.0.1:0", upstream = "127.0.0.1:9000" }
              { listen = "127.0.0.1:0", upstream = "127.0.0.1:9001" }
            ]
            """);

        Assert.Equal(2, settings.Routes.Count);
    }

    [Fact]
    public void Explicit_sizes_and_numbers_replace_auto()
    {
        var settings = FromHocon("""
            relay.defaults.client-side { receive-buffer = 256KiB, send-buffer = 1m, max-segment = 1460 }
            relay.dispatchers { cores = 3, pin = on, throughput = 5 }
            relay.management { endpoint = off, token = "s3cret" }
            """);

        Assert.Equal(256 * 1024, settings.Defaults.ClientSide.ReceiveBuffer);
        Assert.Equal(1024 * 1024, settings.Defaults.ClientSide.SendBuffer);
        Assert.Equal(1460, settings.Defaults.ClientSide.MaxSegment);
        Assert.Null(settings.Defaults.UpstreamSide.ReceiveBuffer);
        Assert.Equal(new DispatcherSettings(3, true, 5), settings.Dispatchers);
        Assert.Null(settings.Management.Endpoint);
        Assert.Equal("s3cret", settings.Management.Token);
    }

    [Fact]
    public void Half_closed_timeout_is_off_or_a_duration_and_null_circuits_quiet_or_log_per_route()
    {
        var settings = FromHocon($$"""
            relay.defaults { half-closed-timeout = 30s, null-circuits = log }
            relay.routes = [
              { name = a, listen = "0.0.0.0:7000", upstream = "198.18.1.2:7000", half-closed-timeout = off, null-circuits = quiet }
              { name = b, listen = "0.0.0.0:7001", upstream = "198.18.1.2:7001" }
            ]
            """);

        Assert.Null(settings.Routes[0].Circuit.HalfClosedTimeout);
        Assert.Equal(NullCircuits.Quiet, settings.Routes[0].Circuit.NullCircuits);
        Assert.Equal(TimeSpan.FromSeconds(30), settings.Routes[1].Circuit.HalfClosedTimeout);
        Assert.Equal(NullCircuits.Log, settings.Routes[1].Circuit.NullCircuits);
    }

    [Theory]
    [InlineData("relay.defaults.half-closed-timeout = soon",
        "relay.defaults.half-closed-timeout = \"soon\": must be off or a duration greater than 0 and at most 24d, like 30s or 5m")]
    [InlineData("relay.defaults.half-closed-timeout = 0s",
        "relay.defaults.half-closed-timeout = \"0s\": must be off or a duration greater than 0 and at most 24d, like 30s or 5m")]
    [InlineData("relay.defaults.null-circuits = on", "relay.defaults.null-circuits = \"on\": must be quiet or log")]
    public void Bad_half_closed_timeouts_and_null_circuit_modes_are_one_line_naming_the_choices(string hocon, string message)
    {
        Assert.Equal(message, Rejected(hocon).Message);
    }

    [Fact]
    public void Window_smaller_than_write_size_is_rejected_with_its_key_path()
    {
        var e = Rejected($"relay.routes = [ {{ {Route}, window = 1k }} ]");

        Assert.Equal("relay.routes[0].window", e.Key);
        Assert.Equal("1k", e.Value);
        Assert.Equal("relay.routes[0].window = \"1k\": must be at least write-size (256 KiB)", e.Message);
    }

    [Fact]
    public void A_route_write_size_above_the_inherited_window_says_the_window_is_inherited()
    {
        var e = Rejected($"relay.routes = [ {{ {Route}, write-size = 2m }} ]");

        Assert.Equal("relay.routes[0].window", e.Key);
        Assert.Contains("inherited from relay.defaults", e.Message);
    }

    [Fact]
    public void An_unknown_congestion_algorithm_is_rejected_with_the_available_ones_listed()
    {
        var available = File.ReadAllText("/proc/sys/net/ipv4/tcp_available_congestion_control").Split(' ', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

        var e = Rejected("relay.defaults.upstream-side.congestion = no-such-algorithm");

        Assert.Equal("relay.defaults.upstream-side.congestion", e.Key);
        Assert.All(available, name => Assert.Contains(name, e.Message));
    }

    [Fact]
    public void A_congestion_algorithm_the_kernel_lists_is_accepted()
    {
        var first = File.ReadAllText("/proc/sys/net/ipv4/tcp_available_congestion_control").Split(' ', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)[0];

        var settings = FromHocon($"relay.defaults.client-side.congestion = {first}");

        Assert.Equal(first, settings.Defaults.ClientSide.Congestion);
    }

    [Fact]
    public void Akka_parse_errors_inside_values_become_config_errors_with_the_key_path()
    {
        var e = Rejected("relay.defaults.idle-timeout = 99999999999999999999999d");

        Assert.Equal("relay.defaults.idle-timeout", e.Key);
    }

    [Theory]
    // timeouts
    [InlineData("relay.defaults.connect-timeout = 0s", "relay.defaults.connect-timeout")]
    [InlineData("relay.defaults.idle-timeout = soon", "relay.defaults.idle-timeout")]
    [InlineData("relay.defaults.idle-timeout = 30d", "relay.defaults.idle-timeout")]
    [InlineData("relay.defaults.half-closed-timeout = infinite", "relay.defaults.half-closed-timeout")]
    [InlineData("relay.defaults.half-closed-timeout = -1s", "relay.defaults.half-closed-timeout")]
    [InlineData("relay.defaults.null-circuits = [quiet]", "relay.defaults.null-circuits")]
    // sizes
    [InlineData("relay.defaults.write-size = 512", "relay.defaults.write-size")]
    [InlineData("relay.defaults.write-size = 32m", "relay.defaults.write-size")]
    [InlineData("relay.defaults.write-size = big", "relay.defaults.write-size")]
    [InlineData("relay.defaults.window = 32k", "relay.defaults.window")]
    [InlineData("relay.defaults.window = 2g", "relay.defaults.window")]
    [InlineData("relay.defaults.window = -5", "relay.defaults.window")]
    [InlineData("relay.defaults.backlog = 0", "relay.defaults.backlog")]
    // socket options, both sides
    [InlineData("relay.defaults.client-side.receive-buffer = lots", "relay.defaults.client-side.receive-buffer")]
    [InlineData("relay.defaults.client-side.send-buffer = 0", "relay.defaults.client-side.send-buffer")]
    [InlineData("relay.defaults.upstream-side.send-buffer = 2g", "relay.defaults.upstream-side.send-buffer")]
    [InlineData("relay.defaults.upstream-side.max-segment = 80", "relay.defaults.upstream-side.max-segment")]
    [InlineData("relay.defaults.client-side.max-segment = 70000", "relay.defaults.client-side.max-segment")]
    [InlineData("relay.defaults.client-side.max-segment = 1.5k", "relay.defaults.client-side.max-segment")]
    [InlineData("relay.defaults.client-side.no-delay = maybe", "relay.defaults.client-side.no-delay")]
    [InlineData("relay.defaults.client-side.congestion = \"bbr; rm\"", "relay.defaults.client-side.congestion")]
    [InlineData("relay.defaults.client-side.keepalive.enabled = 2", "relay.defaults.client-side.keepalive.enabled")]
    [InlineData("relay.defaults.client-side.keepalive.count = 0", "relay.defaults.client-side.keepalive.count")]
    [InlineData("relay.defaults.client-side.keepalive.count = 128", "relay.defaults.client-side.keepalive.count")]
    [InlineData("relay.defaults.client-side.keepalive.count = [1]", "relay.defaults.client-side.keepalive.count")]
    [InlineData("relay.defaults.upstream-side.keepalive.idle = 1500ms", "relay.defaults.upstream-side.keepalive.idle")]
    [InlineData("relay.defaults.upstream-side.keepalive.idle = 500ms", "relay.defaults.upstream-side.keepalive.idle")]
    [InlineData("relay.defaults.upstream-side.keepalive.interval = 40000s", "relay.defaults.upstream-side.keepalive.interval")]
    // unknown keys anywhere under relay
    [InlineData("relay.route = []", "relay.route")]
    [InlineData("relay.defaults.writesize = 1k", "relay.defaults.writesize")]
    [InlineData("relay.defaults.keepalive.count = 3", "relay.defaults.keepalive")]
    [InlineData("relay.defaults.client-side.recieve-buffer = 1m", "relay.defaults.client-side.recieve-buffer")]
    [InlineData("relay.defaults.client-side = on", "relay.defaults.client-side")]
    [InlineData("relay.dispatchers.core = 2", "relay.dispatchers.core")]
    // dispatchers and management
    [InlineData("relay.dispatchers.cores = 0", "relay.dispatchers.cores")]
    [InlineData("relay.dispatchers.cores = 2000", "relay.dispatchers.cores")]
    [InlineData("relay.dispatchers.cores = many", "relay.dispatchers.cores")]
    [InlineData("relay.dispatchers.throughput = 0", "relay.dispatchers.throughput")]
    [InlineData("relay.dispatchers.throughput = 10001", "relay.dispatchers.throughput")]
    [InlineData("relay.dispatchers.pin = sometimes", "relay.dispatchers.pin")]
    [InlineData("relay.management.endpoint = nowhere", "relay.management.endpoint")]
    [InlineData("relay.management.endpoint = \"127.0.0.1:99999\"", "relay.management.endpoint")]
    // the routes list itself
    [InlineData("relay.routes = \"0.0.0.0:7000\"", "relay.routes")]
    [InlineData("relay.routes = [ \"0.0.0.0:7000=198.18.1.2:7000\" ]", "relay.routes[0]")]
    public void Each_invalid_value_is_rejected_with_its_key_path(string hocon, string key)
    {
        var e = Rejected(hocon);

        Assert.Equal(key, e.Key);
        Assert.StartsWith(key, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("listen = \"localhost:7000\", upstream = \"198.18.1.2:7000\"", "relay.routes[0].listen")]
    [InlineData("listen = \"0.0.0.0:70000\", upstream = \"198.18.1.2:7000\"", "relay.routes[0].listen")]
    [InlineData("listen = \"0.0.0.0\", upstream = \"198.18.1.2:7000\"", "relay.routes[0].listen")]
    [InlineData("listen = \"::1:7000\", upstream = \"198.18.1.2:7000\"", "relay.routes[0].listen")]
    [InlineData("listen = \"[10.0.0.1]:7000\", upstream = \"198.18.1.2:7000\"", "relay.routes[0].listen")]
    [InlineData("listen = \"10.1:7000\", upstream = \"198.18.1.2:7000\"", "relay.routes[0].listen")]
    [InlineData("upstream = \"198.18.1.2:7000\"", "relay.routes[0].listen")]
    [InlineData("listen = \"0.0.0.0:7000\"", "relay.routes[0].upstream")]
    [InlineData("listen = \"0.0.0.0:7000\", upstream = \"198.18.1.2:0\"", "relay.routes[0].upstream")]
    [InlineData("listen = \"0.0.0.0:7000\", upstream = \"198.18.1.2\"", "relay.routes[0].upstream")]
    [InlineData("listen = \"0.0.0.0:7000\", upstream = \"999.1.1.1:80\"", "relay.routes[0].upstream")]
    [InlineData("listen = \"0.0.0.0:7000\", upstream = \"bad host!:80\"", "relay.routes[0].upstream")]
    [InlineData("listen = \"0.0.0.0:7000\", upstream = \"*:80\"", "relay.routes[0].upstream")]
    [InlineData("listen = \"0.0.0.0:7000\", upstream = \"[nope]:80\"", "relay.routes[0].upstream")]
    [InlineData(Route + ", name = \"-web\"", "relay.routes[0].name")]
    [InlineData(Route + ", name = \"has space\"", "relay.routes[0].name")]
    [InlineData(Route + ", name = \"a23456789012345678901234567890123456789012345678901234567890123456\"", "relay.routes[0].name")]
    [InlineData(Route + ", mode = transparent", "relay.routes[0].upstream")]
    [InlineData(Route + ", mode = sideways", "relay.routes[0].mode")]
    [InlineData(Route + ", writesize = 1k", "relay.routes[0].writesize")]
    [InlineData(Route + ", client-side { recieve-buffer = 1m }", "relay.routes[0].client-side.recieve-buffer")]
    [InlineData(Route + ", upstream-side { keepalive { cnt = 1 } }", "relay.routes[0].upstream-side.keepalive.cnt")]
    [InlineData(Route + ", client-side = 5", "relay.routes[0].client-side")]
    [InlineData(Route + ", backlog = 70000", "relay.routes[0].backlog")]
    [InlineData(Route + ", write-size = 100", "relay.routes[0].write-size")]
    [InlineData(Route + ", idle-timeout = 0s", "relay.routes[0].idle-timeout")]
    [InlineData(Route + ", upstream-side { keepalive { count = 200 } }", "relay.routes[0].upstream-side.keepalive.count")]
    public void Each_invalid_route_value_is_rejected_with_its_key_path(string routeBody, string key)
    {
        var e = Rejected($"relay.routes = [ {{ {routeBody} }} ]");

        Assert.Equal(key, e.Key);
        Assert.StartsWith(key, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Duplicate_route_names_are_rejected_on_the_second_route()
    {
        var e = Rejected("""
            relay.routes = [
              { name = web, listen = "0.0.0.0:7000", upstream = "198.18.1.2:7000" }
              { name = web, listen = "0.0.0.0:7001", upstream = "198.18.1.2:7001" }
            ]
            """);

        Assert.Equal("relay.routes[1].name", e.Key);
        Assert.Contains("relay.routes[0]", e.Message);
    }

    [Fact]
    public void An_explicit_name_equal_to_an_automatic_name_is_rejected()
    {
        var e = Rejected("""
            relay.routes = [
              { listen = "0.0.0.0:7000", upstream = "198.18.1.2:7000" }
              { name = route-1, listen = "0.0.0.0:7001", upstream = "198.18.1.2:7001" }
            ]
            """);

        Assert.Equal("relay.routes[1].name", e.Key);
    }

    [Theory]
    [InlineData("0.0.0.0:7000", "0.0.0.0:7000")]
    [InlineData("0.0.0.0:7000", "127.0.0.1:7000")]
    [InlineData("127.0.0.1:7000", "*:7000")]
    [InlineData("[::1]:7000", "[::]:7000")]
    public void Two_routes_on_the_same_listen_address_are_rejected(string first, string second)
    {
        var e = Rejected($$"""
            relay.routes = [
              { listen = "{{first}}", upstream = "198.18.1.2:7000" }
              { listen = "{{second}}", upstream = "198.18.1.2:7001" }
            ]
            """);

        Assert.Equal("relay.routes[1].listen", e.Key);
    }

    [Fact]
    public void Different_addresses_on_the_same_port_are_accepted()
    {
        var settings = FromHocon("""
            relay.routes = [
              { listen = "127.0.0.1:7000", upstream = "198.18.1.2:7000" }
              { listen = "127.0.0.2:7000", upstream = "198.18.1.2:7001" }
              { listen = "[::1]:7000", upstream = "198.18.1.2:7002" }
            ]
            """);

        Assert.Equal(3, settings.Routes.Count);
    }
}
