using System.Net;
using Relay.Actors.Configuration;
using Relay.Actors.Upstreams;

namespace Relay.Tests.Support;

/// <summary>Settings for tests, built directly so a test states only what it is about.</summary>
internal static class TestSettings
{
    public static readonly KeepAliveSettings KeepAlive = new(true, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(10), 5);

    public static readonly SocketSideSettings Side = new(null, null, true, null, null, KeepAlive);

    public static CircuitSettings Circuit(
        TimeSpan? connectTimeout = null,
        TimeSpan? idleTimeout = null,
        TimeSpan? halfClosedTimeout = null,
        int writeSize = 64 * 1024,
        int window = 256 * 1024,
        bool splice = true) =>
        new(connectTimeout ?? TimeSpan.FromSeconds(5), idleTimeout ?? TimeSpan.FromMinutes(5),
            halfClosedTimeout, writeSize, window, Side, Side) { Splice = splice };

    public static RouteSettings Route(IPEndPoint upstream, CircuitSettings? circuit = null, string name = "test") =>
        new(name, new IPEndPoint(IPAddress.Loopback, 0), UpstreamPoolSettings.Single(Address(upstream)), 512,
            circuit ?? Circuit());

    /// <summary>A route from 127.0.0.1:0 to a pool of <paramref name="members"/>.</summary>
    public static RouteSettings PoolRoute(IEnumerable<IPEndPoint> members, BalanceMode balance = BalanceMode.RoundRobin,
        PassiveHealthSettings? passive = null, HealthCheckSettings? healthCheck = null, CircuitSettings? circuit = null, string name = "test") =>
        new(name, new IPEndPoint(IPAddress.Loopback, 0),
            new UpstreamPoolSettings(members.Select(Address).ToList(), balance, passive ?? UpstreamPoolSettings.DefaultPassive,
                healthCheck ?? UpstreamPoolSettings.DefaultHealthCheck),
            512, circuit ?? Circuit());

    public static UpstreamAddress Address(IPEndPoint endpoint) => new(endpoint.Address.ToString(), endpoint.Port);

    public static RelaySettings Relay(params RouteSettings[] routes) => Relay(2, routes);

    public static RelaySettings Relay(int cores, params RouteSettings[] routes) =>
        new(routes, Circuit(), new DispatcherSettings(cores, true, 64), new ManagementSettings(null, ""));
}
