using System.Net;
using Akka.Configuration;
using Relay.Actors.Circuits.ProxyProtocol;
using Relay.Actors.Configuration;

namespace Relay.Tests.Configuration;

/// <summary>The admission and PROXY protocol keys: defaults, overrides, and one clear line for each mistake.</summary>
public sealed class AdmissionSettingsTests
{
    private const string Route = "listen = \"0.0.0.0:7000\", upstream = \"198.18.1.2:7000\"";

    private static RelaySettings FromHocon(string hocon) => RelaySettings.Create(ConfigurationFactory.ParseString(hocon));

    private static RelayConfigException Rejected(string hocon) => Assert.Throws<RelayConfigException>(() => FromHocon(hocon));

    [Fact]
    public void By_default_every_client_is_admitted_without_limits_or_proxy_headers()
    {
        var settings = FromHocon($"relay.routes = [ {{ {Route} }} ]");

        var route = settings.Routes[0];
        Assert.True(route.Access.IsOpen);
        Assert.Equal(LimitSettings.None, route.Limits);
        Assert.Equal(new ProxyProtocolSettings(ProxyProtocolVersion.Off, false, TimeSpan.FromSeconds(5)), route.ProxyProtocol);
        Assert.Equal(LimitSettings.None, settings.Limits);
    }

    [Fact]
    public void Routes_take_admission_keys_from_defaults_and_override_them()
    {
        var settings = FromHocon($$"""
            relay {
              defaults { deny = ["198.18.9.0/24"], max-circuits = 100, proxy-protocol = v1 }
              routes = [
                { name = a, {{Route}} }
                { name = b, listen = "0.0.0.0:7001", upstream = "198.18.1.2:7001", allow = ["198.18.0.0/15", "2001:db8::/32", "::ffff:10.0.0.0/104"],
                  max-circuits = off, max-circuits-per-source = 4, accept-rate = 50, proxy-protocol = v2,
                  accept-proxy-protocol = on, proxy-header-timeout = 2s }
              ]
              limits { max-circuits = 1000, max-circuits-per-source = 20, accept-rate = 500 }
            }
            """);

        var a = settings.Routes[0];
        Assert.Equal([IPNetwork.Parse("198.18.9.0/24")], a.Access.Deny);
        Assert.Equal(new LimitSettings(100, null, null), a.Limits);
        Assert.Equal(ProxyProtocolVersion.V1, a.ProxyProtocol.Send);

        var b = settings.Routes[1];
        // An IPv4-mapped IPv6 network is kept as the IPv4 network it stands for.
        Assert.Equal([IPNetwork.Parse("198.18.0.0/15"), IPNetwork.Parse("2001:db8::/32"), IPNetwork.Parse("10.0.0.0/8")], b.Access.Allow);
        Assert.Equal(new LimitSettings(null, 4, 50), b.Limits);
        Assert.Equal(new ProxyProtocolSettings(ProxyProtocolVersion.V2, true, TimeSpan.FromSeconds(2)), b.ProxyProtocol);

        Assert.Equal(new LimitSettings(1000, 20, 500), settings.Limits);
    }

    [Fact]
    public void A_single_address_is_a_host_network_and_a_single_string_a_list_of_one()
    {
        var route = FromHocon($"relay.routes = [ {{ {Route}, allow = \"203.0.113.7\", deny = [\"2001:db8::5\"] }} ]").Routes[0];
        Assert.Equal([IPNetwork.Parse("203.0.113.7/32")], route.Access.Allow);
        Assert.Equal([IPNetwork.Parse("2001:db8::5/128")], route.Access.Deny);
    }

    [Theory]
    [InlineData("allow = [\"10.1.2.3/8\"]", "relay.routes[0].allow", "host bits set beyond /8; the network is 10.0.0.0/8")]
    [InlineData("allow = [\"10.0.0.0/33\"]", "relay.routes[0].allow", "prefix length: it must be 0 to 32")]
    [InlineData("deny = [\"10.1\"]", "relay.routes[0].deny", "not an address or network")]
    [InlineData("deny = [\"fe80::1%eth0/64\"]", "relay.routes[0].deny", "not an address or network")]
    [InlineData("deny = [\"example.com\"]", "relay.routes[0].deny", "not an address or network")]
    [InlineData("deny = [ { a = 1 } ]", "relay.routes[0].deny", "must be a list of strings")]
    [InlineData("max-circuits = 0", "relay.routes[0].max-circuits", "must be off or a whole number from 1 to 10000000")]
    [InlineData("max-circuits-per-source = lots", "relay.routes[0].max-circuits-per-source", "must be off or a whole number")]
    [InlineData("accept-rate = -5", "relay.routes[0].accept-rate", "must be off or a whole number")]
    [InlineData("proxy-protocol = v3", "relay.routes[0].proxy-protocol", "must be off, v1 or v2")]
    [InlineData("accept-proxy-protocol = maybe", "relay.routes[0].accept-proxy-protocol", "must be on or off")]
    [InlineData("proxy-header-timeout = 0s", "relay.routes[0].proxy-header-timeout", "greater than 0")]
    public void A_bad_admission_value_names_its_key_and_value(string assignment, string key, string problem)
    {
        var e = Rejected($"relay.routes = [ {{ {Route}, {assignment} }} ]");
        Assert.Equal(key, e.Key);
        Assert.Contains(problem, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Bad_defaults_and_node_limits_are_reported_under_their_own_paths()
    {
        Assert.Equal("relay.defaults.accept-rate", Rejected("relay.defaults.accept-rate = fast").Key);
        Assert.Equal("relay.limits.max-circuits", Rejected("relay.limits.max-circuits = none").Key);
        var unknown = Rejected("relay.limits.max-conns = 5");
        Assert.Equal("relay.limits.max-conns", unknown.Key);
        Assert.Contains("max-circuits, max-circuits-per-source, accept-rate", unknown.Message);
    }

    [Fact]
    public void Check_config_prints_the_admission_keys_and_its_output_reads_back_the_same()
    {
        var settings = FromHocon($$"""
            relay {
              defaults { deny = ["198.18.9.0/24"], accept-rate = 20 }
              routes = [ { {{Route}}, allow = ["2001:db8::/32", "198.18.0.0/15"], proxy-protocol = v2, accept-proxy-protocol = on, proxy-header-timeout = 1500ms } ]
              limits.max-circuits-per-source = 7
            }
            """);

        var text = RelayConfigLoader.Render(settings);
        var again = FromHocon(text);

        Assert.Contains("allow = [\"2001:db8::/32\", \"198.18.0.0/15\"]", text);
        Assert.Equal(settings.Routes[0], again.Routes[0]);
        Assert.Equal(settings.DefaultAdmission, again.DefaultAdmission);
        Assert.Equal(settings.Limits, again.Limits);
    }

    [Fact]
    public void The_reference_config_documents_every_admission_key()
    {
        var text = RelayConfigLoader.EmbeddedDefaultsText;
        foreach (var key in new[]
                 {
                     "allow = []", "deny = []", "max-circuits = off", "max-circuits-per-source = off", "accept-rate = off",
                     "proxy-protocol = off", "accept-proxy-protocol = off", "proxy-header-timeout = 5s", "limits {",
                 })
        {
            Assert.Contains(key, text);
        }
    }
}
