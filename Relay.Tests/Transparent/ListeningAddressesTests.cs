using System.Net;
using Relay.Actors.Transparent;

namespace Relay.Tests.Transparent;

/// <summary>The loop guard: a transparent route never connects to one of the relay's own listeners.</summary>
public sealed class ListeningAddressesTests
{
    private static IPEndPoint At(string address, int port) => new(IPAddress.Parse(address), port);

    // This host's addresses, for the test: loopback and one interface address.
    private static bool IsLocal(IPAddress address) => IPAddress.IsLoopback(address) || address.Equals(IPAddress.Parse("198.18.1.2"));

    [Fact]
    public void A_destination_equal_to_a_bound_listener_is_a_loop()
    {
        var guard = new ListeningAddresses(IsLocal);
        guard.Add("gw", At("198.18.1.2", 15001));

        Assert.Equal(At("198.18.1.2", 15001), guard.FindLoop(At("198.18.1.2", 15001)));
        Assert.Null(guard.FindLoop(At("198.18.1.2", 15002)));
    }

    [Fact]
    public void A_wildcard_listener_is_reached_through_every_local_address_but_not_through_foreign_ones()
    {
        var guard = new ListeningAddresses(IsLocal);
        guard.Add("gw", At("0.0.0.0", 15001));

        Assert.NotNull(guard.FindLoop(At("198.18.1.2", 15001)));
        Assert.NotNull(guard.FindLoop(At("127.0.0.1", 15001)));
        Assert.NotNull(guard.FindLoop(At("::ffff:198.18.1.2", 15001)));
        // A real server elsewhere that happens to use the listener's port is not a loop.
        Assert.Null(guard.FindLoop(At("198.18.2.2", 15001)));
    }

    [Fact]
    public void Every_route_counts_and_a_removed_route_no_longer_does()
    {
        var guard = new ListeningAddresses(IsLocal);
        guard.Add("web", At("127.0.0.1", 8080));
        guard.Add("gw", At("0.0.0.0", 15001));

        Assert.NotNull(guard.FindLoop(At("127.0.0.1", 8080)));
        guard.Remove("web");
        Assert.Null(guard.FindLoop(At("127.0.0.1", 8080)));
    }

    [Fact]
    public void Loopback_and_the_unspecified_address_are_always_local()
    {
        Assert.True(ListeningAddresses.IsLocalAddress(IPAddress.Loopback));
        Assert.True(ListeningAddresses.IsLocalAddress(IPAddress.IPv6Loopback));
        Assert.True(ListeningAddresses.IsLocalAddress(IPAddress.Any));
        Assert.False(ListeningAddresses.IsLocalAddress(IPAddress.Parse("198.51.100.77")));
    }
}
