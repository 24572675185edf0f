using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors;
using Relay.Actors.Configuration;
using Relay.Tests.Support;
using static Relay.Tests.Support.Connections;

namespace Relay.Tests.Reload;

/// <summary>
/// <see cref="RelayNode.ApplyAsync"/> on a live node: routes start, drain, change and move,
/// open circuits are never cut, and a reload that cannot be applied changes nothing.
/// </summary>
public sealed class ReloadTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    // A listener a reload retired stops accepting after its acceptors have answered, a moment
    // after the reload's own answer.
    private static readonly TimeSpan RetiredListenerCloses = TimeSpan.FromSeconds(5);

    private static RouteSettings Route(string name, IPEndPoint upstream, IPEndPoint? listen = null) =>
        TestSettings.Route(upstream, name: name) with { Listen = listen ?? new IPEndPoint(IPAddress.Loopback, 0) };

    private static async Task EchoOnceAsync(IPEndPoint relay)
    {
        using var client = await SocketIo.ConnectAsync(relay);
        var sent = await SocketIo.SendRandomAsync(client, 10_000, seed: 3);
        client.Shutdown(SocketShutdown.Send);
        var (bytes, hash) = await SocketIo.ReadToEndAsync(client).WaitAsync(Timeout);
        Assert.Equal(10_000, bytes);
        Assert.Equal(sent, hash);
    }

    /// <summary>
    /// A transfer that sends <paramref name="total"/> bytes in paced chunks and reads the echo back concurrently;
    /// its second half waits for <paramref name="secondHalf"/>.
    /// </summary>
    private static async Task<(Task<byte[]> Sent, Task<(long Bytes, byte[] Hash)> Received, Socket Client)> StartTransferAsync(
        IPEndPoint relay, long total, Task secondHalf)
    {
        var client = await SocketIo.ConnectAsync(relay);
        // Paced, so the reload lands in the middle; held at half way, so a slow reload (a busy
        // machine took longer than the whole paced transfer) cannot land after its end.
        var (sent, received) = StartPacedTransfer(client, total, paceMs: 10, seed: 11, secondHalf);
        return (sent, received, client);
    }

    [Fact]
    public async Task A_changed_route_sends_new_circuits_to_its_new_upstream_while_a_transfer_in_flight_completes_intact()
    {
        await using var oldUpstream = new TestServer(TestServer.Echo);
        await using var newUpstream = new TestServer(TestServer.Echo);
        await using var node = await RelayHarness.StartAsync(TestSettings.Relay(Route("web", oldUpstream.Endpoint)));
        var listen = node.EndpointOf("web");

        var secondHalf = new TaskCompletionSource();
        var (sent, received, client) = await StartTransferAsync(listen, 64 * 64 * 1024, secondHalf.Task);
        using var _ = client;
        await Eventually.Holds(() => node.Circuits.Snapshot().Any(c => c.Counters.BytesDown > 256 * 1024), "the transfer to be under way");

        var outcome = await node.ApplyAsync(TestSettings.Relay(Route("web", newUpstream.Endpoint)));

        Assert.True(outcome.Applied, outcome.Problem);
        Assert.Equal(["web"], outcome.Changes!.Changed);
        Assert.Empty(outcome.Changes.Rebound);
        Assert.Equal(listen, node.EndpointOf("web")); // the socket was handed over: same port
        await EchoOnceAsync(listen);
        Assert.Equal(1, newUpstream.Accepted);
        Assert.False(received.IsCompleted, "the transfer should still be running across the reload");
        secondHalf.SetResult();

        var hash = await sent.WaitAsync(Timeout);
        var (bytes, receivedHash) = await received.WaitAsync(Timeout);
        Assert.Equal(64L * 64 * 1024, bytes);
        Assert.Equal(hash, receivedHash);
        Assert.Equal(1, oldUpstream.Accepted);
    }

    /// <summary>
    /// Reload and cluster ownership meet in the guardian: a reload on a node that does not
    /// serve (a standby) binds nothing but is what the node binds when it takes over.
    /// </summary>
    [Fact]
    public async Task A_reload_while_not_serving_binds_nothing_and_is_what_serving_again_binds()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var node = await RelayHarness.StartAsync(TestSettings.Relay(Route("old", upstream.Endpoint)));
        var old = node.EndpointOf("old");

        await node.Guardian.Ask<RelayGuardian.ServingStopped>(RelayGuardian.StopServing.Instance, Timeout);
        Assert.True(await RefusesAsync(old));

        var applied = await node.Guardian.Ask<RelayGuardian.RoutesApplied>(
            new RelayGuardian.ApplyRoutes([Route("new", upstream.Endpoint)]), Timeout);
        Assert.Equal(["new"], applied.Changes.Added);
        Assert.Equal(["old"], applied.Changes.Removed);
        Assert.Empty(applied.Routes); // nothing bound while not serving

        var bound = await node.Guardian.Ask<RelayGuardian.RoutesBound>(RelayGuardian.StartServing.Instance, Timeout);
        Assert.Equal(["new"], bound.Routes.Select(r => r.Route));
        await EchoOnceAsync(bound.Routes.Single().Endpoint);
        Assert.True(await RefusesAsync(old));
    }

    [Fact]
    public async Task Added_routes_start_and_removed_routes_stop_accepting_while_their_open_circuit_finishes()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var node = await RelayHarness.StartAsync(TestSettings.Relay(Route("keep", upstream.Endpoint), Route("gone", upstream.Endpoint)));
        var gone = node.EndpointOf("gone");
        using var open = await SocketIo.ConnectAsync(gone);
        await open.SendAsync(new byte[100], SocketFlags.None);
        await SocketIo.ReadExactlyAsync(open, 100).WaitAsync(Timeout);
        // A circuit of the route that has ended: its supervisor waits parked for the next one,
        // and must not keep the retired route's acceptors alive.
        await EchoOnceAsync(gone);
        await Eventually.Holds(() => node.Circuits.Count == 1, "the ended circuit to leave the table");
        await Task.Delay(200);
        var keepListener = await node.System.ActorSelection("/user/relay/listener-keep").ResolveOne(Timeout);

        var outcome = await node.ApplyAsync(TestSettings.Relay(Route("keep", upstream.Endpoint), Route("new", upstream.Endpoint)));

        Assert.True(outcome.Applied, outcome.Problem);
        Assert.Equal(["new"], outcome.Changes!.Added);
        Assert.Equal(["gone"], outcome.Changes.Removed);
        Assert.Empty(outcome.Changes.Changed);
        Assert.Equal(["keep", "new"], node.Routes.Select(r => r.Route));
        Assert.Equal(["keep", "new"], node.Settings.Routes.Select(r => r.Name));
        await EchoOnceAsync(node.EndpointOf("new"));
        await EchoOnceAsync(node.EndpointOf("keep"));
        await Eventually.Holds(() => RefusesAsync(gone), "the retired listener to refuse connects", RetiredListenerCloses);
        // The unchanged route kept its very listener.
        Assert.Equal(keepListener, await node.System.ActorSelection("/user/relay/listener-keep").ResolveOne(Timeout));

        // The removed route's open circuit still carries bytes both ways and ends cleanly...
        await open.SendAsync(new byte[100], SocketFlags.None);
        await SocketIo.ReadExactlyAsync(open, 100).WaitAsync(Timeout);
        open.Shutdown(SocketShutdown.Send);
        Assert.Equal("eof", await SocketIo.ReadUntilClosedAsync(open, Timeout));
        // ...and then its listener is gone too, nothing left behind.
        await Eventually.Holds(
            () => node.System.ActorSelection("/user/relay/listener-gone").Ask<ActorIdentity>(new Identify(1), Timeout).Result.Subject is null,
            "the removed route's listener to stop once its last circuit ended");
    }

    [Fact]
    public async Task A_route_whose_listen_address_changed_is_rebound_and_the_old_address_refuses()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var node = await RelayHarness.StartAsync(TestSettings.Relay(Route("web", upstream.Endpoint)));
        var before = node.EndpointOf("web");

        var outcome = await node.ApplyAsync(TestSettings.Relay(Route("web", upstream.Endpoint, new IPEndPoint(IPAddress.Parse("127.0.0.2"), 0))));

        Assert.True(outcome.Applied, outcome.Problem);
        Assert.Equal(["web"], outcome.Changes!.Rebound);
        var after = node.EndpointOf("web");
        Assert.Equal(IPAddress.Parse("127.0.0.2"), after.Address);
        await EchoOnceAsync(after);
        await Eventually.Holds(() => RefusesAsync(before), "the rebound route's old listener to refuse connects", RetiredListenerCloses);
    }

    [Fact]
    public async Task A_reload_that_cannot_listen_is_rejected_and_changes_nothing()
    {
        await using var oldUpstream = new TestServer(TestServer.Echo);
        await using var newUpstream = new TestServer(TestServer.Echo);
        using var occupant = Endpoints.Occupy();
        await using var node = await RelayHarness.StartAsync(TestSettings.Relay(Route("web", oldUpstream.Endpoint)));
        var routes = node.Routes;

        var outcome = await node.ApplyAsync(TestSettings.Relay(
            Route("web", newUpstream.Endpoint),
            Route("taken", oldUpstream.Endpoint, (IPEndPoint)occupant.LocalEndPoint!)));

        Assert.False(outcome.Applied);
        Assert.Contains("route taken: cannot listen on", outcome.Problem);
        Assert.Contains("address already in use", outcome.Problem);
        Assert.Equal(routes, node.Routes);
        await EchoOnceAsync(node.EndpointOf("web"));
        Assert.Equal(1, oldUpstream.Accepted); // the changed route was not touched
        Assert.Equal(0, newUpstream.Accepted);
    }

    [Fact]
    public async Task A_reload_with_nothing_changed_keeps_each_pool_and_its_health()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        var settings = TestSettings.Relay(Route("web", upstream.Endpoint));
        await using var node = await RelayHarness.StartAsync(settings);
        Assert.True(node.Pools.TryGet("web", out var before));

        var outcome = await node.ApplyAsync(settings with { Routes = [Route("web", upstream.Endpoint)] });

        Assert.True(outcome.Applied);
        Assert.True(outcome.Changes!.IsEmpty);
        Assert.True(node.Pools.TryGet("web", out var after));
        Assert.Same(before, after);
    }
}
