using System.Net;
using Akka.Actor.Setup;
using Akka.Configuration;
using Relay.Actors;
using Relay.Actors.Configuration;

namespace Relay.Tests.Support;

/// <summary>Starts a real relay node in the test process and stops it afterwards.</summary>
internal static class RelayHarness
{
    /// <summary>Quiet Akka logging for tests; the logging tests configure their own.</summary>
    public static readonly Config TestConfig = ConfigurationFactory.ParseString("""
        akka.loglevel = WARNING
        akka.stdout-loglevel = WARNING
        """);

    public static Task<RelayNode> StartAsync(RelaySettings settings, Config? config = null) =>
        RelayNode.StartAsync(settings, config ?? TestConfig, "test-node");

    /// <summary>As <see cref="StartAsync(RelaySettings, Config?)"/>, with actor-system setups (a logging pipeline).</summary>
    public static Task<RelayNode> StartAsync(RelaySettings settings, Config config, IEnumerable<Setup> setups) =>
        RelayNode.StartAsync(settings, config, "test-node", setups);

    /// <summary>One route from 127.0.0.1:0 to <paramref name="upstream"/>.</summary>
    public static Task<RelayNode> StartAsync(IPEndPoint upstream, CircuitSettings? circuit = null, int cores = 2) =>
        StartAsync(TestSettings.Relay(cores, TestSettings.Route(upstream, circuit)));

    public static IPEndPoint Listen(this RelayNode node) => node.EndpointOf("test");
}
