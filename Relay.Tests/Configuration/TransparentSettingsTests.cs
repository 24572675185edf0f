using System.Net;
using Akka.Configuration;
using Relay.Actors.Configuration;
using Relay.Actors.Transparent;

namespace Relay.Tests.Configuration;

/// <summary>The route keys of transparent gateway mode: mode, interception, upstream-source, destinations.</summary>
public sealed class TransparentSettingsTests
{
    private static RelaySettings FromHocon(string hocon) => RelaySettings.Create(ConfigurationFactory.ParseString(hocon));

    private static RouteSettings OneRoute(string body) => Assert.Single(FromHocon($"relay.routes = [ {{ {body} }} ]").Routes);

    [Fact]
    public void A_transparent_route_needs_no_upstream_and_defaults_to_redirect_from_the_relay_with_no_policy()
    {
        var route = OneRoute("name = gw, listen = \"0.0.0.0:15001\", mode = transparent");

        var transparent = Assert.IsType<TransparentSettings>(route.Transparent);
        Assert.Equal(Interception.Redirect, transparent.Interception);
        Assert.Equal(UpstreamSource.Relay, transparent.UpstreamSource);
        Assert.Same(DestinationPolicy.AllowAll, transparent.Destinations);
        Assert.Equal("original-destination", route.Upstreams.ToString());
    }

    [Fact]
    public void Every_transparent_key_is_read()
    {
        var route = OneRoute("""
            listen = "0.0.0.0:15002", mode = transparent, interception = tproxy, upstream-source = client
            destinations {
              allow = ["198.18.2.0/24", "2001:db8::/32"]
              deny = ["198.18.2.3"]
              ports = [80, "8000-8100"]
            }
            """);

        var t = route.Transparent!;
        Assert.Equal(Interception.Tproxy, t.Interception);
        Assert.Equal(UpstreamSource.Client, t.UpstreamSource);
        Assert.Equal(["198.18.2.0/24", "2001:db8::/32"], t.Destinations.Allow.Select(n => n.ToString()));
        Assert.Equal(["198.18.2.3/32"], t.Destinations.Deny.Select(n => n.ToString()));
        Assert.Equal([new PortRange(80, 80), new PortRange(8000, 8100)], t.Destinations.Ports);
    }

    [Fact]
    public void A_forward_route_stays_forward()
    {
        var route = OneRoute("listen = \"0.0.0.0:7000\", upstream = \"198.18.1.2:7000\", mode = forward");

        Assert.Null(route.Transparent);
        Assert.Equal("198.18.1.2:7000", route.Upstreams.ToString());
    }

    [Theory]
    [InlineData("mode = transparent, upstream = \"198.18.2.2:80\"", "relay.routes[0].upstream", "a transparent route connects to each connection's original destination")]
    [InlineData("mode = transparent, interception = dnat", "relay.routes[0].interception", "must be redirect or tproxy")]
    [InlineData("mode = transparent, upstream-source = server", "relay.routes[0].upstream-source", "must be relay or client")]
    [InlineData("mode = transparent, destinations { allow = [\"198.18.2.1/24\"] }", "relay.routes[0].destinations.allow[0]", "'198.18.2.1/24' has host bits set")]
    [InlineData("mode = transparent, destinations { deny = [\"10.0.0.0/8\", \"nope\"] }", "relay.routes[0].destinations.deny[1]", "'nope' is not a CIDR")]
    [InlineData("mode = transparent, destinations { deny = \"10.0.0.0/8\" }", "relay.routes[0].destinations.deny", "must be a list")]
    [InlineData("mode = transparent, destinations { ports = [80, 70000] }", "relay.routes[0].destinations.ports[1]", "must be a port (1..65535) or a range")]
    [InlineData("mode = transparent, destinations { allowed = [] }", "relay.routes[0].destinations.allowed", "unknown key")]
    [InlineData("upstream = \"198.18.2.2:80\", interception = tproxy", "relay.routes[0].interception", "is only for transparent routes")]
    [InlineData("upstream = \"198.18.2.2:80\", destinations { ports = [80] }", "relay.routes[0].destinations", "is only for transparent routes")]
    public void Each_invalid_transparent_value_is_rejected_in_one_line_naming_its_key(string body, string key, string problem)
    {
        var e = Assert.Throws<RelayConfigException>(() => OneRoute($"listen = \"0.0.0.0:15001\", {body}"));

        Assert.Equal(key, e.Key);
        Assert.Contains(problem, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Check_config_renders_a_transparent_route_that_parses_back_to_the_same_settings()
    {
        var settings = FromHocon("""
            relay.routes = [
              { name = gw, listen = "0.0.0.0:15002", mode = transparent, interception = tproxy, upstream-source = client
                destinations { deny = ["198.18.2.3/32"], ports = [9100, "9200-9300"] } }
            ]
            """);

        var rendered = RelayConfigLoader.Render(settings);
        var reparsed = RelaySettings.Create(ConfigurationFactory.ParseString(rendered));

        Assert.Contains("mode = transparent", rendered);
        Assert.DoesNotContain("upstream = ", rendered);
        Assert.Equal(rendered, RelayConfigLoader.Render(reparsed));
        var t = reparsed.Routes[0].Transparent!;
        Assert.Equal(Interception.Tproxy, t.Interception);
        Assert.Equal(UpstreamSource.Client, t.UpstreamSource);
        Assert.Equal([new PortRange(9100, 9100), new PortRange(9200, 9300)], t.Destinations.Ports);
    }

    [Fact]
    public void The_transparent_flag_becomes_a_route_that_a_file_route_of_the_same_name_gives_way_to()
    {
        var file = Path.Combine(Path.GetTempPath(), $"gw-{Guid.NewGuid():N}.conf");
        File.WriteAllText(file, "relay.routes = [ { name = gw, listen = \"127.0.0.1:7000\", upstream = \"198.18.1.2:7000\" } ]");
        try
        {
            var settings = RelaySettings.Create(RelayConfigLoader.Load([file], [], null, null, ["gw@0.0.0.0:15001"]));

            var route = Assert.Single(settings.Routes);
            Assert.NotNull(route.Transparent);
            Assert.Equal(new IPEndPoint(IPAddress.Any, 15001), route.Listen);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
