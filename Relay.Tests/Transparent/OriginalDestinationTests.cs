using System.Net;
using Relay.Actors.Transparent;

namespace Relay.Tests.Transparent;

/// <summary>
/// Decoding the sockaddr that getsockopt(SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST) fills in.
/// The bytes are laid out as Linux's struct sockaddr_in / sockaddr_in6 on x86-64 and arm64:
/// family in host (little-endian) order, port in network order.
/// </summary>
public sealed class OriginalDestinationTests
{
    [Fact]
    public void Decodes_an_IPv4_sockaddr_in()
    {
        // AF_INET = 2, port 9100 = 0x238C, 198.18.2.2, 8 bytes of sin_zero
        byte[] sockaddr = [2, 0, 0x23, 0x8C, 198, 18, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0];

        Assert.True(OriginalDestination.TryDecode(sockaddr, out var endpoint));

        Assert.Equal(new IPEndPoint(IPAddress.Parse("198.18.2.2"), 9100), endpoint);
    }

    [Fact]
    public void Decodes_an_IPv6_sockaddr_in6_with_its_scope_id()
    {
        var sockaddr = new byte[28];
        sockaddr[0] = 10; // AF_INET6
        sockaddr[2] = 0x01;
        sockaddr[3] = 0xBB; // port 443
        IPAddress.Parse("2001:db8::2").GetAddressBytes().CopyTo(sockaddr, 8);
        sockaddr[24] = 3; // sin6_scope_id = 3

        Assert.True(OriginalDestination.TryDecode(sockaddr, out var endpoint));

        Assert.Equal(IPAddress.Parse("2001:db8::2"), new IPAddress(endpoint!.Address.GetAddressBytes()));
        Assert.Equal(3, endpoint.Address.ScopeId);
        Assert.Equal(443, endpoint.Port);
    }

    [Fact]
    public void An_IPv4_mapped_IPv6_destination_comes_back_as_IPv4()
    {
        var sockaddr = new byte[28];
        sockaddr[0] = 10;
        sockaddr[3] = 80;
        IPAddress.Parse("::ffff:198.18.2.2").GetAddressBytes().CopyTo(sockaddr, 8);

        Assert.True(OriginalDestination.TryDecode(sockaddr, out var endpoint));

        Assert.Equal(new IPEndPoint(IPAddress.Parse("198.18.2.2"), 80), endpoint);
    }

    [Theory]
    [InlineData(new byte[] { })]
    [InlineData(new byte[] { 2 })]
    [InlineData(new byte[] { 2, 0, 0, 80, 1, 2 })]                                  // truncated sockaddr_in
    [InlineData(new byte[] { 10, 0, 0, 80, 0, 0, 0, 0, 1, 2, 3, 4 })]              // truncated sockaddr_in6
    [InlineData(new byte[] { 1, 0, 0, 80, 198, 18, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0 })] // AF_UNIX
    [InlineData(new byte[] { 2, 0, 0, 0, 198, 18, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0 })]  // port 0: nothing to connect to
    public void Refuses_what_is_not_a_usable_inet_sockaddr(byte[] sockaddr)
    {
        Assert.False(OriginalDestination.TryDecode(sockaddr, out _));
    }
}
