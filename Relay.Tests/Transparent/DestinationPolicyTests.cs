using System.Net;
using Relay.Actors.Transparent;

namespace Relay.Tests.Transparent;

public sealed class DestinationPolicyTests
{
    private static IPEndPoint At(string address, int port) => new(IPAddress.Parse(address), port);

    private static IPNetwork Net(string cidr)
    {
        Assert.True(DestinationPolicy.TryParseNetwork(cidr, out var network, out var problem), problem);
        return network;
    }

    private static DestinationPolicy Policy(string[]? allow = null, string[]? deny = null, string[]? ports = null) =>
        new((allow ?? []).Select(Net).ToList(), (deny ?? []).Select(Net).ToList(),
            (ports ?? []).Select(p => PortRange.TryParse(p, out var r) ? r : throw new ArgumentException(p)).ToList());

    [Fact]
    public void An_empty_policy_allows_every_destination()
    {
        Assert.Null(DestinationPolicy.AllowAll.Check(At("198.18.2.2", 22)));
        Assert.Null(DestinationPolicy.AllowAll.Check(At("2001:db8::1", 443)));
    }

    [Theory]
    [InlineData("198.18.2.2", 80, true)]
    [InlineData("198.18.2.255", 8080, true)]
    [InlineData("198.18.3.1", 80, false)]     // outside every allow
    [InlineData("2001:db8::5", 443, true)]
    [InlineData("2001:db9::5", 443, false)]
    public void Allow_lists_the_only_networks_a_route_may_reach(string address, int port, bool allowed)
    {
        var policy = Policy(allow: ["198.18.2.0/24", "2001:db8::/32"]);

        Assert.Equal(allowed, policy.Check(At(address, port)) is null);
    }

    [Fact]
    public void Deny_wins_over_allow_and_says_which_entry_matched()
    {
        var policy = Policy(allow: ["198.18.0.0/15"], deny: ["198.18.2.3/32"]);

        Assert.Null(policy.Check(At("198.18.2.2", 80)));
        Assert.Equal("198.18.2.3 is in destinations.deny 198.18.2.3/32", policy.Check(At("198.18.2.3", 80)));
    }

    [Theory]
    [InlineData(80, true)]
    [InlineData(443, true)]
    [InlineData(8000, true)]
    [InlineData(8100, true)]
    [InlineData(8101, false)]
    [InlineData(22, false)]
    public void Ports_restrict_destination_ports_with_single_ports_and_inclusive_ranges(int port, bool allowed)
    {
        var policy = Policy(ports: ["80", "443", "8000-8100"]);

        var verdict = policy.Check(At("198.18.2.2", port));

        Assert.Equal(allowed, verdict is null);
        if (!allowed)
        {
            Assert.Equal($"port {port} is not in destinations.ports [80, 443, 8000-8100]", verdict);
        }
    }

    [Fact]
    public void An_IPv4_mapped_destination_is_matched_against_IPv4_rules()
    {
        var policy = Policy(deny: ["198.18.2.0/24"]);

        Assert.NotNull(policy.Check(At("::ffff:198.18.2.2", 80)));
        Assert.Null(policy.Check(At("::ffff:198.18.3.2", 80)));
    }

    [Fact]
    public void An_IPv4_rule_never_matches_an_IPv6_destination()
    {
        Assert.Null(Policy(deny: ["0.0.0.0/0"]).Check(At("2001:db8::1", 80)));
        Assert.NotNull(Policy(deny: ["::/0"]).Check(At("2001:db8::1", 80)));
    }

    [Theory]
    [InlineData("198.18.2.0/24", "198.18.2.0/24")]
    [InlineData("198.18.2.7", "198.18.2.7/32")]
    [InlineData(" 2001:db8::/32 ", "2001:db8::/32")]
    [InlineData("::1", "::1/128")]
    [InlineData("0.0.0.0/0", "0.0.0.0/0")]
    public void Parses_CIDRs_and_bare_addresses(string text, string expected)
    {
        Assert.Equal(expected, Net(text).ToString());
    }

    [Theory]
    [InlineData("198.18.2.1/24", "'198.18.2.1/24' has host bits set; the network is 198.18.2.0/24")]
    [InlineData("198.18.2.0/33", "'198.18.2.0/33': the prefix length must be 0 to 32")]
    [InlineData("2001:db8::/129", "'2001:db8::/129': the prefix length must be 0 to 128")]
    [InlineData("198.18.2/24", "'198.18.2/24' is not a CIDR like 198.18.2.0/24 or 2001:db8::/32")]
    [InlineData("example.com/24", "'example.com/24' is not a CIDR like 198.18.2.0/24 or 2001:db8::/32")]
    [InlineData("198.18.2.0/", "'198.18.2.0/': the prefix length must be 0 to 32")]
    public void Refuses_malformed_CIDRs_with_the_reason(string text, string problem)
    {
        Assert.False(DestinationPolicy.TryParseNetwork(text, out _, out var actual));
        Assert.Equal(problem, actual);
    }

    [Theory]
    [InlineData("80", 80, 80)]
    [InlineData("8000-8100", 8000, 8100)]
    [InlineData(" 1 - 65535 ", 1, 65535)]
    public void Parses_ports_and_ranges(string text, int from, int to)
    {
        Assert.True(PortRange.TryParse(text, out var range));
        Assert.Equal(new PortRange(from, to), range);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("65536")]
    [InlineData("90-80")]
    [InlineData("http")]
    [InlineData("")]
    [InlineData("1-2-3")]
    public void Refuses_bad_ports(string text)
    {
        Assert.False(PortRange.TryParse(text, out _));
    }
}
