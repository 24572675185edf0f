using System.Net;
using Relay.Actors.Handover;

namespace Relay.Tests.Handover;

/// <summary>
/// The replayed peer segments byte for byte. The expected packets were computed apart from the
/// relay's code (Python's struct and its own RFC 1071 sum); the root tests in
/// <see cref="TcpRepairLabTests"/> show the kernel taking them.
/// </summary>
public sealed class PeerSegmentTests
{
    [Fact]
    public void An_ipv4_fin_from_the_peer_is_a_whole_packet_with_a_correct_tcp_checksum()
    {
        Span<byte> packet = stackalloc byte[PeerSegment.MaxBytes];
        var length = PeerSegment.Write(packet, new IPEndPoint(IPAddress.Parse("198.18.6.1"), 8000), new IPEndPoint(IPAddress.Parse("198.18.6.10"), 40000),
            0x89ABCDEF, 0x01234567, PeerSegment.Fin | PeerSegment.Ack, 502);

        // IPv4 (checksum and id left to the kernel: IP_HDRINCL fills them), then TCP.
        Assert.Equal("450000280000400040060000c6120601c612060a" + "1f409c4089abcdef01234567501101f6bc070000", Convert.ToHexStringLower(packet[..length]));
    }

    [Fact]
    public void An_ipv6_acknowledgement_from_the_peer_is_a_whole_packet_with_a_correct_tcp_checksum()
    {
        Span<byte> packet = stackalloc byte[PeerSegment.MaxBytes];
        var length = PeerSegment.Write(packet, new IPEndPoint(IPAddress.Parse("2001:2::6:1"), 8000), new IPEndPoint(IPAddress.Parse("2001:2::6:10"), 40000),
            0x89ABCDEF, 0x01234567, PeerSegment.Ack, 65535);

        Assert.Equal("60000000001406402001000200000000000000000006000120010002000000000000000000060010" + "1f409c4089abcdef012345675010ffff160c0000",
            Convert.ToHexStringLower(packet[..length]));
    }
}
