using System.Net;
using Relay.Actors.Configuration;

namespace Relay.Tests.Configuration;

public sealed class RelayConfigLoaderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("relay-config-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string File(string name, string hocon)
    {
        var path = Path.Combine(_dir, name);
        System.IO.File.WriteAllText(path, hocon);
        return path;
    }

    private static RelaySettings Settings(IEnumerable<string> files, IEnumerable<string>? routes = null, string? management = null, string? token = null) =>
        RelaySettings.Create(RelayConfigLoader.Load(files, routes ?? [], management, token));

    [Fact]
    public void No_files_and_no_flags_give_the_embedded_defaults()
    {
        var settings = Settings([]);

        Assert.Equal(RelaySettings.Create(RelayConfigLoader.EmbeddedDefaults).Defaults, settings.Defaults);
        Assert.Empty(settings.Routes);
    }

    [Fact]
    public void Later_files_override_earlier_files_key_by_key()
    {
        var first = File("first.conf", """
            relay.defaults { idle-timeout = 10m, write-size = 128k, window = 512k }
            relay.routes = [ { name = a, listen = "0.0.0.0:7000", upstream = "198.18.1.2:7000" } ]
            """);
        var second = File("second.conf", "relay.defaults.idle-timeout = 20m\n");

        var settings = Settings([first, second]);

        Assert.Equal(TimeSpan.FromMinutes(20), settings.Defaults.IdleTimeout);
        Assert.Equal(128 * 1024, settings.Defaults.WriteSize);
        Assert.Equal("a", Assert.Single(settings.Routes).Name);
        Assert.Equal(TimeSpan.FromMinutes(20), settings.Routes[0].Circuit.IdleTimeout);
    }

    [Fact]
    public void A_later_file_with_routes_replaces_the_whole_route_list()
    {
        var first = File("first.conf", "relay.routes = [ { name = a, listen = \"0.0.0.0:7000\", upstream = \"198.18.1.2:7000\" } ]");
        var second = File("second.conf", "relay.routes = [ { name = b, listen = \"0.0.0.0:7001\", upstream = \"198.18.1.2:7001\" } ]");

        Assert.Equal("b", Assert.Single(Settings([first, second]).Routes).Name);
        Assert.Equal("a", Assert.Single(Settings([second, first]).Routes).Name);
    }

    [Fact]
    public void Route_flags_are_appended_to_file_routes_and_replace_same_named_ones()
    {
        var file = File("routes.conf", """
            relay.routes = [
              { name = web, listen = "0.0.0.0:8080", upstream = "198.18.1.2:80", write-size = 128k }
              { name = ssh, listen = "0.0.0.0:2222", upstream = "198.18.1.2:22" }
            ]
            """);

        var settings = Settings([file], ["web@0.0.0.0:8081=198.18.1.3:80", "127.0.0.1:0=[::1]:9000"]);

        Assert.Equal(["ssh", "web", "route-3"], settings.Routes.Select(r => r.Name));
        var web = settings.Routes[1];
        Assert.Equal(new IPEndPoint(IPAddress.Any, 8081), web.Listen);
        Assert.Equal(new UpstreamAddress("198.18.1.3", 80), web.Upstreams.Members.Single());
        Assert.Equal(256 * 1024, web.Circuit.WriteSize); // the flag route replaced the file route whole
        Assert.Equal(new UpstreamAddress("::1", 9000), settings.Routes[2].Upstreams.Members.Single());
    }

    [Fact]
    public void Management_flags_override_the_files()
    {
        var file = File("mgmt.conf", "relay.management { endpoint = \"0.0.0.0:9000\", token = from-file }");

        var overridden = Settings([file], management: "127.0.0.1:18558", token: "from \"flag\"");
        var disabled = Settings([file], management: "off");
        var untouched = Settings([file]);

        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 18558), overridden.Management.Endpoint);
        Assert.Equal("from \"flag\"", overridden.Management.Token);
        Assert.Null(disabled.Management.Endpoint);
        Assert.Equal("from-file", disabled.Management.Token);
        Assert.Equal(new IPEndPoint(IPAddress.Any, 9000), untouched.Management.Endpoint);
    }

    [Fact]
    public void A_bad_management_flag_is_rejected_naming_the_flag()
    {
        var e = Assert.Throws<RelayConfigException>(() => RelayConfigLoader.Load([], [], "nowhere", null));

        Assert.Equal("--management", e.Key);
    }

    [Fact]
    public void Akka_keys_from_files_reach_the_loaded_config()
    {
        var file = File("akka.conf", "akka.loglevel = DEBUG\nakka.remote.dot-netty.tcp.port = 4053\n");

        var config = RelayConfigLoader.Load([file], [], null, null);

        Assert.Equal("DEBUG", config.GetString("akka.loglevel"));
        Assert.Equal(4053, config.GetInt("akka.remote.dot-netty.tcp.port"));
    }

    [Fact]
    public void A_missing_file_is_rejected_naming_the_file()
    {
        var path = Path.Combine(_dir, "missing.conf");

        var e = Assert.Throws<RelayConfigException>(() => RelayConfigLoader.Load([path], [], null, null));

        Assert.Equal(path, e.Key);
        Assert.Contains("not found", e.Message);
    }

    [Theory]
    [InlineData("relay {\n  defaults {\n    client-side { no-delay = on }, write-size = 1k\n  }\n}\n", 3)]
    [InlineData("relay {\n  routes = [ 1, 2\n  x = }\n", 3)]
    [InlineData("relay {\n  defaults {\n    write-size = 1k\n", 2)]
    [InlineData("relay {\n  x = \"unterminated\n}\n", 2)]
    [InlineData("relay.defaults.window = ${nope}\n", 0)]
    [InlineData("relay {\n  listen = 0.0.0.0:7000\n}\n", 0)]
    public void A_hocon_syntax_error_is_one_line_naming_the_file_and_line_when_known(string hocon, int line)
    {
        var path = File("broken.conf", hocon);

        var e = Assert.Throws<RelayConfigException>(() => RelayConfigLoader.Load([path], [], null, null));

        Assert.StartsWith(path, e.Key);
        if (line > 0)
        {
            Assert.StartsWith($"{path}:{line}:", e.Key);
        }

        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Loading_leaves_the_embedded_defaults_unchanged()
    {
        var file = File("override.conf", "relay.defaults.write-size = 128k\nrelay.defaults.window = 1m\n");
        RelaySettings.Create(RelayConfigLoader.Load([file], ["127.0.0.1:0=127.0.0.1:9000"], "off", "t"));

        var defaults = RelaySettings.Create(RelayConfigLoader.EmbeddedDefaults);

        Assert.Equal(256 * 1024, defaults.Defaults.WriteSize);
        Assert.Empty(defaults.Routes);
        Assert.NotNull(defaults.Management.Endpoint);
    }

    [Fact]
    public void Rendered_settings_parse_back_to_the_same_settings()
    {
        var file = File("full.conf", """
            relay.defaults { idle-timeout = 90s, client-side { send-buffer = 3m, max-segment = 1400, keepalive { enabled = off } } }
            relay.routes = [
              { name = jumbo, listen = "0.0.0.0:7000", upstream = "198.18.1.2:7000", write-size = 256k, window = 1m, half-closed-timeout = 45s, null-circuits = log, upstream-side { congestion = reno } }
            ]
            relay.dispatchers.cores = 3
            """);
        var settings = Settings([file], ["[::1]:0=backend.example:443"]);

        var rendered = RelayConfigLoader.Render(settings);
        var reparsed = RelaySettings.Create(Akka.Configuration.ConfigurationFactory.ParseString(rendered));

        Assert.Equal(rendered, RelayConfigLoader.Render(reparsed));
        Assert.Equal(settings.Routes[0].Circuit, reparsed.Routes[0].Circuit);
        Assert.Equal(settings.Routes[1], reparsed.Routes[1] with { Circuit = settings.Routes[1].Circuit });
        Assert.Contains("write-size = 256k", rendered);
        Assert.Contains("upstream = \"backend.example:443\"", rendered);
        Assert.Contains("half-closed-timeout = 45s", rendered);
        Assert.Contains("null-circuits = log", rendered);
        Assert.Contains("half-closed-timeout = off", rendered); // the defaults
        Assert.Contains("null-circuits = quiet", rendered);
    }

    [Fact]
    public void Rendering_never_prints_the_management_token()
    {
        var settings = Settings([], token: "very-secret");

        Assert.DoesNotContain("very-secret", RelayConfigLoader.Render(settings));
    }
}
