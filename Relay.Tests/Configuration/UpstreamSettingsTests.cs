using Relay.Actors.Configuration;
using Relay.Actors.Upstreams;

namespace Relay.Tests.Configuration;

/// <summary>The pool keys of a route and <c>relay.shutdown-grace</c>: read, defaulted, and rejected with one clear line.</summary>
public sealed class UpstreamSettingsTests
{
    private static RelaySettings Parse(string hocon) => RelaySettings.Create(HoconText.Parse(hocon, "test"));

    private static string Error(string hocon) => Assert.Throws<RelayConfigException>(() => Parse(hocon)).Message;

    [Fact]
    public void Upstreams_reads_a_pool_with_the_balance_and_health_keys_of_the_route_over_the_defaults()
    {
        var settings = Parse("""
            relay.defaults.passive-health.fall = 5
            relay.routes = [
              { name = "web", listen = "127.0.0.1:0", upstreams = [ "198.18.1.2:80", "backend.example:81" ], balance = least-circuits,
                health-check { enabled = on, interval = 1s, timeout = 500ms } }
            ]
            relay.shutdown-grace = 10s
            """);

        var pool = settings.Routes[0].Upstreams;
        Assert.Equal([new UpstreamAddress("198.18.1.2", 80), new UpstreamAddress("backend.example", 81)], pool.Members);
        Assert.Equal(BalanceMode.LeastCircuits, pool.Balance);
        Assert.Equal(new PassiveHealthSettings(5, TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(1)), pool.Passive);
        Assert.Equal(new HealthCheckSettings(true, TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(500), 2, 3), pool.HealthCheck);
        Assert.Equal(TimeSpan.FromSeconds(10), settings.ShutdownGrace);
    }

    [Fact]
    public void One_upstream_is_a_pool_of_one_with_the_defaults_and_the_grace_defaults_to_30s()
    {
        var settings = Parse("""relay.routes = [ { listen = "127.0.0.1:0", upstream = "198.18.1.2:80" } ]""");
        Assert.Equal(UpstreamPoolSettings.Single(new UpstreamAddress("198.18.1.2", 80)), settings.Routes[0].Upstreams);
        Assert.Equal(TimeSpan.FromSeconds(30), settings.ShutdownGrace);
        Assert.Equal(TimeSpan.Zero, Parse("relay.shutdown-grace = 0s").ShutdownGrace);
    }

    [Theory]
    [InlineData("""upstream = "198.18.1.2:80", upstreams = [ "198.18.1.3:80" ]""",
        "relay.routes[0].upstreams: a route has either upstream (one) or upstreams (a list), not both")]
    [InlineData("""upstreams = [ ]""", "relay.routes[0].upstreams: must be a non-empty list")]
    [InlineData("""upstreams = "198.18.1.2:80" """, "relay.routes[0].upstreams = \"198.18.1.2:80\": must be a non-empty list")]
    [InlineData("""upstreams = [ "198.18.1.2:80", "198.18.1.2:80" ]""", "relay.routes[0].upstreams[1] = \"198.18.1.2:80\": is already relay.routes[0].upstreams[0]")]
    [InlineData("""upstreams = [ "198.18.1.2:80", "nope" ]""", "relay.routes[0].upstreams[1] = \"nope\"")]
    [InlineData("""upstream = "198.18.1.2:80", balance = random""", "relay.routes[0].balance = \"random\": must be round-robin or least-circuits")]
    [InlineData("""upstream = "198.18.1.2:80", health-check { interval = 1s, timeout = 2s }""",
        "relay.routes[0].health-check.timeout = \"2s\": must be at most health-check.interval (1s)")]
    [InlineData("""upstream = "198.18.1.2:80", passive-health { backoff = 1m, max-backoff = 1s }""",
        "relay.routes[0].passive-health.max-backoff = \"1s\": must be at least passive-health.backoff (1m)")]
    [InlineData("""upstream = "198.18.1.2:80", health-check { rsie = 2 }""", "relay.routes[0].health-check.rsie: unknown key")]
    [InlineData("""name = "x" """, "relay.routes[0].upstream: is missing")]
    public void Bad_pool_keys_are_one_line_naming_the_key_and_the_value(string route, string expected)
    {
        var message = Error($$"""relay.routes = [ { listen = "127.0.0.1:0", {{route}} } ]""");
        Assert.StartsWith(expected, message);
        Assert.DoesNotContain('\n', message);
    }

    [Fact]
    public void A_pool_of_more_than_64_members_is_rejected()
    {
        var members = string.Join(", ", Enumerable.Range(1, 65).Select(i => $"\"198.18.1.2:{i}\""));
        Assert.Contains("has 65 members; a route may have at most 64", Error($$"""relay.routes = [ { listen = "127.0.0.1:0", upstreams = [ {{members}} ] } ]"""));
    }

    [Fact]
    public void A_bad_shutdown_grace_and_bad_pool_defaults_are_rejected()
    {
        Assert.StartsWith("relay.shutdown-grace = \"soon\"", Error("relay.shutdown-grace = soon"));
        Assert.StartsWith("relay.defaults.balance = \"fastest\"", Error("relay.defaults.balance = fastest"));
    }

    [Fact]
    public void Check_config_renders_a_pool_that_reads_back_equal()
    {
        var settings = Parse("""
            relay.routes = [ { name = "web", listen = "127.0.0.1:0", upstreams = [ "198.18.1.2:80", "[::1]:81" ], balance = least-circuits } ]
            relay.shutdown-grace = 5s
            """);
        var again = RelaySettings.Create(HoconText.Parse(RelayConfigLoader.Render(settings), "rendered"));
        Assert.Equal(settings.Routes[0], again.Routes[0]);
        Assert.Equal(settings.ShutdownGrace, again.ShutdownGrace);
    }
}
