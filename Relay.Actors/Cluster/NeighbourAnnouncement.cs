using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Relay.Actors.Internal;
using Relay.Actors.Native;

namespace Relay.Actors.Cluster;

/// <summary>
/// The frames that tell a segment's hosts that an address has moved to this interface's MAC,
/// so they stop sending to the node that held it before their neighbour entry expires
/// (15-45 s of REACHABLE on Linux, then 5 s more before it probes). Each is the payload of an
/// AF_PACKET SOCK_DGRAM send: the kernel adds the Ethernet header.
/// </summary>
internal static class NeighbourAnnouncement
{
    /// <summary>ff:ff:ff:ff:ff:ff.</summary>
    public static readonly byte[] Broadcast = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

    /// <summary>33:33:00:00:00:01, the Ethernet group of ff02::1 (all nodes).</summary>
    public static readonly byte[] AllNodesMac = [0x33, 0x33, 0x00, 0x00, 0x00, 0x01];

    private static readonly IPAddress AllNodes = IPAddress.Parse("ff02::1");

    private const byte IcmpV6 = 58;
    private const byte NeighbourAdvertisementType = 136;
    private const byte TargetLinkLayerAddressOption = 2;
    // RFC 4861 4.4: receivers drop neighbour discovery packets whose hop limit is not 255.
    private const byte NeighbourDiscoveryHopLimit = 255;

    /// <summary>
    /// A gratuitous ARP (28 bytes, EtherType 0x0806, to <see cref="Broadcast"/>): a request
    /// whose sender and target are both <paramref name="address"/>, with <paramref name="mac"/>
    /// as sender hardware address and a zero target hardware address, as the Linux kernel's own
    /// (arp_notify) and RFC 5227's announcement are. Linux hosts that have an entry for the
    /// address replace its MAC on it at once (a gratuitous ARP overrides the entry's lock time).
    /// </summary>
    public static byte[] GratuitousArp(IPAddress address, ReadOnlySpan<byte> mac)
    {
        if (address.AddressFamily != AddressFamily.InterNetwork || mac.Length != PacketSocket.ETH_ALEN)
        {
            throw new ArgumentException($"a gratuitous ARP needs an IPv4 address and a 6-byte MAC, not {address} and {mac.Length} bytes");
        }

        var ip = address.GetAddressBytes();
        var arp = new byte[28];
        BinaryPrimitives.WriteUInt16BigEndian(arp, 1); // ARPHRD_ETHER
        BinaryPrimitives.WriteUInt16BigEndian(arp.AsSpan(2), PacketSocket.ETH_P_IP);
        arp[4] = PacketSocket.ETH_ALEN;
        arp[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(arp.AsSpan(6), 1); // ARPOP_REQUEST
        mac.CopyTo(arp.AsSpan(8));
        ip.CopyTo(arp, 14);
        // Target hardware address 18..23 stays zero.
        ip.CopyTo(arp, 24);
        return arp;
    }

    /// <summary>
    /// An unsolicited neighbour advertisement (RFC 4861 7.2.6; 72 bytes, EtherType 0x86DD, to
    /// <see cref="AllNodesMac"/>): an IPv6 packet from <paramref name="address"/> to ff02::1,
    /// hop limit 255, carrying ICMPv6 type 136 with the override flag, <paramref name="address"/>
    /// as target and a target link-layer address option with <paramref name="mac"/>. Override
    /// makes a neighbour replace the MAC it has; not solicited, so the entry goes STALE and is
    /// confirmed by the next exchange. The checksum is computed here, since AF_PACKET bypasses
    /// the IPv6 stack.
    /// </summary>
    public static byte[] UnsolicitedNeighbourAdvertisement(IPAddress address, ReadOnlySpan<byte> mac)
    {
        if (address.AddressFamily != AddressFamily.InterNetworkV6 || mac.Length != PacketSocket.ETH_ALEN)
        {
            throw new ArgumentException($"a neighbour advertisement needs an IPv6 address and a 6-byte MAC, not {address} and {mac.Length} bytes");
        }

        const int icmpLength = 4 + 4 + 16 + 8;
        var packet = new byte[40 + icmpLength];
        var source = address.GetAddressBytes();
        var destination = AllNodes.GetAddressBytes();

        // IPv6 header: version 6, traffic class 0, flow label 0.
        packet[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), icmpLength);
        packet[6] = IcmpV6;
        packet[7] = NeighbourDiscoveryHopLimit;
        source.CopyTo(packet, 8);
        destination.CopyTo(packet, 24);

        var icmp = packet.AsSpan(40);
        icmp[0] = NeighbourAdvertisementType;
        icmp[1] = 0; // code
        icmp[4] = 0x20; // flags: override (not router, not solicited)
        source.CopyTo(icmp[8..]);
        icmp[24] = TargetLinkLayerAddressOption;
        icmp[25] = 1; // option length in units of 8 bytes
        mac.CopyTo(icmp[26..]);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], IcmpV6Checksum(source, destination, icmp));
        return packet;
    }

    /// <summary>
    /// The ICMPv6 checksum (RFC 4443 2.3): the one's complement of the one's complement sum over
    /// the pseudo-header (source, destination, upper-layer length, next header 58) and the
    /// message, whose checksum field must be zero.
    /// </summary>
    public static ushort IcmpV6Checksum(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, ReadOnlySpan<byte> message) =>
        InternetChecksum.WithPseudoHeader(source, destination, IcmpV6, message);
}
