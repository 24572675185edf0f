using Akka.Cluster;
using Akka.Configuration;
using Relay.Actors;
using Relay.Actors.Configuration;
using Relay.Tests.Support;
using ClusterSettings = Relay.Actors.Configuration.ClusterSettings;

namespace Relay.Tests.Cluster;

/// <summary>
/// Several relay nodes in this process, each its own ActorSystem on 127.0.0.1 with an
/// ephemeral remoting port, formed into one cluster: the first joins itself, the others
/// join the first. Nodes are disposed in reverse order.
/// </summary>
internal sealed class ClusterHarness : IAsyncDisposable
{
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private readonly List<RelayNode> _nodes = new();

    public IReadOnlyList<RelayNode> Nodes => _nodes;

    public static RelaySettings Settings(System.Net.IPEndPoint upstream, ClusterMode mode = ClusterMode.ActiveStandby,
        TimeSpan? publishInterval = null, int shards = 64) =>
        TestSettings.Relay(1, TestSettings.Route(upstream)) with
        {
            Cluster = ClusterSettings.Off with
            {
                Enabled = true,
                Mode = mode,
                PublishInterval = publishInterval ?? TimeSpan.FromMilliseconds(200),
                StateShards = shards,
            },
        };

    /// <summary>Starts a node and joins it to the first node (or to itself, for the first).</summary>
    public async Task<RelayNode> AddAsync(RelaySettings settings, string? extraConfig = null)
    {
        var config = ConfigurationFactory.ParseString((extraConfig ?? "") + """

            akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
            akka.loglevel = INFO
            """);
        var node = await RelayNode.StartAsync(settings, config);
        _nodes.Add(node);
        var seed = _nodes[0].Cluster!.Cluster.SelfAddress;
        node.Cluster!.Cluster.Join(seed);
        await Until(() => node.Cluster.Cluster.SelfMember.Status == MemberStatus.Up, $"{node.NodeName} to be Up");
        return node;
    }

    /// <summary>Stops a node as an operator's `systemctl stop` would (it leaves the cluster).</summary>
    public async Task StopAsync(RelayNode node)
    {
        _nodes.Remove(node);
        await node.DisposeAsync();
    }

    /// <summary>As <see cref="Eventually.Holds(Func{bool}, string, TimeSpan?)"/>, with a cluster's <see cref="Patience"/>.</summary>
    public static Task Until(Func<bool> condition, string what, TimeSpan? timeout = null) =>
        Eventually.Holds(condition, what, timeout ?? Patience);

    public async ValueTask DisposeAsync()
    {
        for (var i = _nodes.Count - 1; i >= 0; i--)
        {
            await _nodes[i].DisposeAsync();
        }

        _nodes.Clear();
    }
}
