using Relay.Actors.Configuration;

namespace Relay.Tests.Configuration;

public class RouteSpecTests
{
    [Theory]
    [InlineData("web@0.0.0.0:8080=198.18.1.2:80", "web", "0.0.0.0:8080", "198.18.1.2:80")]
    [InlineData("127.0.0.1:0=127.0.0.1:9000", null, "127.0.0.1:0", "127.0.0.1:9000")]
    [InlineData("[::1]:7000=[::1]:7001", null, "[::1]:7000", "[::1]:7001")]
    [InlineData("v6@[::]:7000=[2001:db8::1]:7001", "v6", "[::]:7000", "[2001:db8::1]:7001")]
    [InlineData("*:7000=backend.example:7000", null, "*:7000", "backend.example:7000")]
    [InlineData(" jumbo-out@:7000 = 198.18.1.2:7000 ", "jumbo-out", ":7000", "198.18.1.2:7000")]
    [InlineData("pool@:7000=198.18.1.2:7000, [::1]:7001", "pool", ":7000", "198.18.1.2:7000,[::1]:7001")]
    public void Valid_specs_parse_into_name_listen_and_upstream(string text, string? name, string listen, string upstream)
    {
        Assert.Equal(new RouteSpec(name, listen, upstream), RouteSpec.Parse(text));
    }

    [Theory]
    [InlineData("")]
    [InlineData("0.0.0.0:8080")]
    [InlineData("0.0.0.0:8080=198.18.1.2:80=x")]
    [InlineData("@0.0.0.0:8080=198.18.1.2:80")]
    [InlineData("bad name@0.0.0.0:8080=198.18.1.2:80")]
    [InlineData("0.0.0.0=198.18.1.2:80")]
    [InlineData("host.example:8080=198.18.1.2:80")]
    [InlineData("0.0.0.0:8080=198.18.1.2")]
    [InlineData("0.0.0.0:8080=198.18.1.2:0")]
    [InlineData("::1:7000=[::1]:7001")]
    [InlineData("[::1]:7000=::1:7001")]
    [InlineData("0.0.0.0:8080=198.18.1.2:80,")]
    [InlineData("0.0.0.0:8080=198.18.1.2:80,nope")]
    public void Malformed_specs_are_rejected_naming_the_route_flag_and_the_spec(string text)
    {
        var e = Assert.Throws<RelayConfigException>(() => RouteSpec.Parse(text));

        Assert.Equal("--route", e.Key);
        Assert.Equal(text, e.Value);
        Assert.StartsWith($"--route = \"{text}\": ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Several_upstreams_on_the_command_line_make_a_pool()
    {
        var settings = RelaySettings.Create(RelayConfigLoader.Load([], ["web@127.0.0.1:0=198.18.1.2:80,198.18.1.3:80"], null, null));
        Assert.Equal([new UpstreamAddress("198.18.1.2", 80), new UpstreamAddress("198.18.1.3", 80)], settings.Routes[0].Upstreams.Members);
    }
}
