using System.Net;
using Akka.Actor;
using Akka.Event;
using Relay.Actors;
using Relay.Actors.Circuits;
using Relay.Actors.Cluster;
using Relay.Tests.Support;

namespace Relay.Tests.Cluster;

/// <summary>
/// The circuit table of each node reaches the others through DistributedData, in shards
/// small enough for Akka.Remote's frame, and a crashed node's open circuits become lost.
/// </summary>
public sealed class CircuitTableReplicationTests
{
    [Fact]
    public async Task Circuits_relayed_by_one_node_are_listed_by_the_other_with_their_node()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var cluster = new ClusterHarness();
        var settings = ClusterHarness.Settings(upstream.Endpoint, Relay.Actors.Configuration.ClusterMode.ActiveActive);
        var first = await cluster.AddAsync(settings);
        var second = await cluster.AddAsync(settings);

        using var client = await SocketIo.ConnectAsync(second.EndpointOf("test"));
        await client.SendAsync("ping"u8.ToArray());
        Assert.Equal("ping"u8.ToArray(), await SocketIo.ReadExactlyAsync(client, 4));
        var local = Assert.Single(second.Circuits.Snapshot());

        await ClusterHarness.Until(() => first.Cluster!.Table.Remote().Any(r => r.Circuit.Id == local.Id && r.Circuit.BytesUp == 4),
            "the first node to see the second's circuit with its bytes");
        var (node, seen) = first.Cluster!.Table.Remote().Single();
        Assert.Equal(second.NodeName, node);
        Assert.Equal(second.Cluster!.SelfAddress, node);
        Assert.Equal("test", seen.Route);
        Assert.Equal(CircuitState.Established, seen.State);
        Assert.Equal(4, seen.BytesDown);

        // A closed circuit leaves the other nodes' tables too.
        client.Close();
        await ClusterHarness.Until(() => first.Cluster.Table.RemoteCount == 0, "the closed circuit to leave the replica");
    }

    [Fact]
    public async Task A_table_of_20000_circuits_replicates_without_oversized_frames()
    {
        const int Circuits = 20_000;
        await using var upstream = new TestServer(TestServer.Echo);
        await using var cluster = new ClusterHarness();
        var settings = ClusterHarness.Settings(upstream.Endpoint, publishInterval: TimeSpan.FromMilliseconds(500));
        var first = await cluster.AddAsync(settings);
        var second = await cluster.AddAsync(settings);
        var errors = new List<string>();
        foreach (var node in new[] { first, second })
        {
            var collector = node.System.ActorOf(Props.Create(() => new ErrorCollector(errors)));
            node.System.EventStream.Subscribe(collector, typeof(Error));
            node.System.EventStream.Subscribe(collector, typeof(Warning));
        }

        FillTable(second, Circuits);

        await Eventually.Holds(() => first.Cluster!.Table.RemoteCount == Circuits, $"all {Circuits} circuits at the first node",
            TimeSpan.FromSeconds(60), () =>
            {
                lock (errors)
                {
                    return $"{first.Cluster!.Table.RemoteCount} there, {second.Circuits.Count} at the second; warnings and errors: {string.Join(" | ", errors.Take(10))}";
                }
            });
        var ids = first.Cluster!.Table.Remote().Select(r => r.Circuit.Id).ToHashSet();
        Assert.Equal(Circuits, ids.Count);
        lock (errors)
        {
            Assert.DoesNotContain(errors, e => e.Contains("oversized", StringComparison.OrdinalIgnoreCase)
                                               || e.Contains("maximum-frame-size", StringComparison.OrdinalIgnoreCase));
        }
    }

    [Fact]
    public void A_gone_nodes_circuits_that_run_here_now_are_not_listed_as_lost()
    {
        // A node hands its circuits over and leaves before its emptied table replicates: its
        // last table still lists them, but they run on this node, so only the rest are lost.
        var table = new ClusterCircuitTable();
        static CircuitRecord Open(long id, string client) =>
            new(id, "svc", client, "198.18.1.100:9000", CircuitState.Established, 10, 20, 0, 0);
        table.Put(new CircuitShard("akka.tcp://relay@n1:2552", 0, [Open(1, "198.18.0.1:40001"), Open(2, "198.18.0.1:40002")]));

        var lost = table.MarkLost("akka.tcp://relay@n1:2552", DateTimeOffset.UtcNow.AddHours(1),
            runsHere: c => c.Route == "svc" && c.Client == "198.18.0.1:40001");

        var only = Assert.Single(lost);
        Assert.Equal(2, only.Id);
        Assert.Equal(CircuitState.Lost, only.State);
        Assert.Equal(2, Assert.Single(table.Lost()).Circuit.Id);
        Assert.Equal(0, table.RemoteCount);
    }

    [Fact]
    public async Task A_crashed_nodes_open_circuits_are_listed_as_lost_by_the_survivor()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var cluster = new ClusterHarness();
        var settings = ClusterHarness.Settings(upstream.Endpoint);
        var survivor = await cluster.AddAsync(settings);
        // No leave on terminate: to the survivor this node just goes silent, as after kill -9.
        var doomed = await cluster.AddAsync(settings, "akka.coordinated-shutdown.run-by-actor-system-terminate = off\n");
        FillTable(doomed, 3);
        await ClusterHarness.Until(() => survivor.Cluster!.Table.RemoteCount == 3, "the doomed node's circuits to replicate");

        await doomed.System.Terminate();

        await ClusterHarness.Until(() => survivor.Cluster!.Table.Lost().Count == 3, "its circuits to be lost");
        var lost = survivor.Cluster!.Table.Lost();
        Assert.All(lost, l => Assert.Equal(CircuitState.Lost, l.Circuit.State));
        Assert.All(lost, l => Assert.Equal(doomed.NodeName, l.Node));
        Assert.Equal([1L, 2L, 3L], lost.Select(l => l.Circuit.Id).Order());
        Assert.Equal(0, survivor.Cluster.Table.RemoteCount);
        Assert.True(survivor.Cluster.Service.IsOwner, "the survivor owns the service");
    }

    /// <summary>Puts <paramref name="count"/> established circuits in the node's table without sockets.</summary>
    internal static void FillTable(RelayNode node, int count)
    {
        for (var i = 0; i < count; i++)
        {
            var id = node.Circuits.NextId();
            var entry = new CircuitEntry(id, "test", node.NodeName, new IPEndPoint(IPAddress.Parse("198.18.0.1"), 10_000 + (i % 50_000)),
                "198.18.2.2:9000", 0, ActorRefs.Nobody) { State = CircuitState.Established };
            entry.Counters.AddWritten(upstream: false, 1000 + i, Environment.TickCount64);
            node.Circuits.Add(entry);
        }
    }

    private sealed class ErrorCollector : ReceiveActor
    {
        public ErrorCollector(List<string> errors) =>
            ReceiveAny(e =>
            {
                lock (errors)
                {
                    errors.Add(e.ToString() ?? "");
                }
            });
    }
}
