using System.Buffers.Binary;
using System.Net;
using Relay.Actors.Cluster;

namespace Relay.Tests.Native;

/// <summary>
/// The announcement frames byte for byte. The expected bytes were computed apart from the
/// relay's code (a few lines of Python's struct, following RFC 826 and RFC 4861); the
/// netns test (NeighbourAnnouncementLabTests) shows a Linux neighbour accepting them.
/// </summary>
public sealed class NeighbourAnnouncementTests
{
    private static readonly byte[] Mac = Convert.FromHexString("02005e00002a");

    [Fact]
    public void A_gratuitous_arp_is_a_request_from_the_vip_for_the_vip_with_this_mac()
    {
        var arp = NeighbourAnnouncement.GratuitousArp(IPAddress.Parse("198.18.0.10"), Mac);

        // htype 1, ptype 0x0800, hlen 6, plen 4, op 1 (request); sha, spa; tha zero; tpa = spa.
        Assert.Equal("0001080006040001" + "02005e00002a" + "c612000a" + "000000000000" + "c612000a", Convert.ToHexStringLower(arp));
    }

    [Fact]
    public void An_unsolicited_neighbour_advertisement_overrides_from_the_vip_to_all_nodes_with_hop_limit_255()
    {
        var packet = NeighbourAnnouncement.UnsolicitedNeighbourAdvertisement(IPAddress.Parse("2001:2::10"), Mac);

        Assert.Equal(
            "6000000000203aff" + "20010002000000000000000000000010" + "ff020000000000000000000000000001"
            + "8800b64f" + "20000000" + "20010002000000000000000000000010" + "0201" + "02005e00002a",
            Convert.ToHexStringLower(packet));
    }

    [Fact]
    public void The_icmpv6_checksum_makes_the_pseudo_header_and_message_sum_to_all_ones()
    {
        foreach (var vip in new[] { "2001:2::10", "fe80::1", "2001:2:0:ffff:ffff:ffff:ffff:ffff" })
        {
            var packet = NeighbourAnnouncement.UnsolicitedNeighbourAdvertisement(IPAddress.Parse(vip), Mac);
            var icmp = packet.AsSpan(40);
            // Summing with the checksum in place gives 0xFFFF, whose complement is 0 (RFC 1071).
            Assert.Equal(0, NeighbourAnnouncement.IcmpV6Checksum(packet.AsSpan(8, 16), packet.AsSpan(24, 16), icmp));
            Assert.NotEqual(0, BinaryPrimitives.ReadUInt16BigEndian(icmp[2..]));
        }
    }

    [Fact]
    public void The_wrong_address_family_or_mac_length_is_refused()
    {
        Assert.Throws<ArgumentException>(() => NeighbourAnnouncement.GratuitousArp(IPAddress.Parse("2001:2::10"), Mac));
        Assert.Throws<ArgumentException>(() => NeighbourAnnouncement.UnsolicitedNeighbourAdvertisement(IPAddress.Parse("198.18.0.10"), Mac));
        Assert.Throws<ArgumentException>(() => NeighbourAnnouncement.GratuitousArp(IPAddress.Parse("198.18.0.10"), new byte[8]));
    }
}
