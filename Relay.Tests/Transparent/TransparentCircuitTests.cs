using System.Net;
using System.Net.Sockets;
using Relay.Actors.Circuits;
using Relay.Actors.Configuration;
using Relay.Actors.Transparent;
using Relay.Tests.Support;

namespace Relay.Tests.Transparent;

/// <summary>
/// Transparent routes on loopback, without interception rules: a client that connects to
/// the transparent listener itself has no NAT entry, so its destination is the listener,
/// which the loop guard must refuse (otherwise the relay would connect to itself, again and
/// again, until it runs out of descriptors).
/// </summary>
public sealed class TransparentCircuitTests
{
    private static RelaySettings Transparent(DestinationPolicy? policy = null) =>
        TestSettings.Relay(new RouteSettings("gw", new IPEndPoint(IPAddress.Loopback, 0), Relay.Actors.Upstreams.UpstreamPoolSettings.Single(TransparentSettings.OriginalDestination), 128, TestSettings.Circuit())
        {
            Transparent = new TransparentSettings(Interception.Redirect, UpstreamSource.Relay, policy ?? DestinationPolicy.AllowAll),
        });

    [Fact]
    public async Task A_client_that_dials_the_transparent_listener_itself_is_reset_by_the_loop_guard()
    {
        await using var node = await RelayHarness.StartAsync(Transparent());
        var listen = node.EndpointOf("gw");

        Assert.Equal(SocketError.ConnectionReset, await ConnectAndAwaitErrorAsync(listen));
        await Eventually.Holds(() => node.Circuits.Count == 0, "the refused circuit is gone");
        Assert.Equal(1, ClosedBy(node, CloseReasons.DestinationDenied));
        Assert.Equal(0, ClosedBy(node, CloseReasons.Complete));
    }

    [Fact]
    public async Task The_destination_policy_is_applied_before_the_loop_guard_and_names_the_rule()
    {
        // The listener's own port is not in ports: refused by the policy, not by the guard.
        await using var node = await RelayHarness.StartAsync(Transparent(new DestinationPolicy([], [], [new PortRange(1, 1)])));

        Assert.Equal(SocketError.ConnectionReset, await ConnectAndAwaitErrorAsync(node.EndpointOf("gw")));
        await Eventually.Holds(() => ClosedBy(node, CloseReasons.DestinationDenied) == 1, "the circuit closed as destination-denied");
    }

    /// <summary>
    /// Connects and reads until the socket fails, returning the error. The relay resets a
    /// refused circuit right after accept, so on a fast path the reset can arrive before
    /// the client's connect has completed: both places count.
    /// </summary>
    private static async Task<SocketError> ConnectAndAwaitErrorAsync(EndPoint listen)
    {
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var e = await Assert.ThrowsAsync<SocketException>(async () =>
        {
            await client.ConnectAsync(listen);
            await client.ReceiveAsync(new byte[16].AsMemory()).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        });
        return e.SocketErrorCode;
    }

    private static long ClosedBy(Relay.Actors.RelayNode node, string reason) =>
        node.Metrics.Collect(node.Circuits).Single(r => r.Route == "gw").ClosedByReason.Single(p => p.Key == reason).Value;
}
