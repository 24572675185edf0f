using System.Net.Sockets;
using Relay.Actors;
using Relay.Tests.Support;

namespace Relay.Tests.Cluster;

/// <summary>
/// Active-standby service ownership among in-process nodes: exactly one node binds the
/// routes, and when it leaves, another takes the service over.
/// </summary>
public sealed class ServiceOwnershipTests
{
    [Fact]
    public async Task Exactly_one_node_owns_the_service_and_a_standby_takes_over_when_it_leaves()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var cluster = new ClusterHarness();
        var settings = ClusterHarness.Settings(upstream.Endpoint);
        var first = await cluster.AddAsync(settings);
        var second = await cluster.AddAsync(settings);
        var third = await cluster.AddAsync(settings);
        var nodes = new[] { first, second, third };

        await ClusterHarness.Until(() => nodes.Count(n => n.Cluster!.Service.IsOwner) == 1, "one owner");
        // The oldest member owns; give a late second claim the chance to show up.
        await Task.Delay(500);
        Assert.Equal([true, false, false], nodes.Select(n => n.Cluster!.Service.IsOwner));
        Assert.Single(first.Routes);
        Assert.Empty(second.Routes);
        Assert.Empty(third.Routes);
        Assert.True(second.IsReady, "a healthy standby is ready");

        // The owner relays.
        await AssertRelaysAsync(first);

        // A graceful leave hands the service to the next oldest.
        var oldEndpoint = first.EndpointOf("test");
        await cluster.StopAsync(first);
        await ClusterHarness.Until(() => second.Cluster!.Service.IsOwner || third.Cluster!.Service.IsOwner, "a new owner");
        await Task.Delay(500); // again, room for a second claim to show up
        Assert.Equal(1, new[] { second, third }.Count(n => n.Cluster!.Service.IsOwner));
        var owner = second.Cluster!.Service.IsOwner ? second : third;
        Assert.Single(owner.Routes);
        await AssertRelaysAsync(owner);

        // The old owner's listener is gone with it.
        using var refused = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await Assert.ThrowsAnyAsync<SocketException>(() => refused.ConnectAsync(oldEndpoint));
    }

    [Fact]
    public async Task Active_active_nodes_all_bind_their_routes()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var cluster = new ClusterHarness();
        var settings = ClusterHarness.Settings(upstream.Endpoint, Relay.Actors.Configuration.ClusterMode.ActiveActive);
        var first = await cluster.AddAsync(settings);
        var second = await cluster.AddAsync(settings);

        await AssertRelaysAsync(first);
        await AssertRelaysAsync(second);
        await ClusterHarness.Until(() => first.Cluster!.Service.IsOwner, "the oldest to hold the (VIP) ownership");
        Assert.False(second.Cluster!.Service.IsOwner);
    }

    private static async Task AssertRelaysAsync(RelayNode node)
    {
        using var client = await SocketIo.ConnectAsync(node.EndpointOf("test"));
        var payload = "hello through the owner"u8.ToArray();
        await client.SendAsync(payload);
        var echoed = await SocketIo.ReadExactlyAsync(client, payload.Length);
        Assert.Equal(payload, echoed);
    }
}
