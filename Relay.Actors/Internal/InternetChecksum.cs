using System.Buffers.Binary;

namespace Relay.Actors.Internal;

/// <summary>
/// INTERNAL API. The Internet checksum (RFC 1071) of a transport message with its IPv4 or
/// IPv6 pseudo-header: the relay writes whole packets for ICMPv6 neighbour advertisements and
/// for the TCP segments a restored half-closed socket is replayed (TCP: RFC 9293 3.1, over
/// IPv6: RFC 8200 8.1). The two pseudo-headers sum alike: addresses, protocol, length.
/// </summary>
internal static class InternetChecksum
{
    /// <summary>
    /// The one's complement of the one's complement sum over the pseudo-header (source,
    /// destination, <paramref name="protocol"/>, the message's length) and
    /// <paramref name="message"/>, whose checksum field must be zero.
    /// </summary>
    public static ushort WithPseudoHeader(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte protocol, ReadOnlySpan<byte> message)
    {
        uint sum = 0;
        sum = Add(sum, source);
        sum = Add(sum, destination);
        sum += (uint)(message.Length >> 16) + (uint)(message.Length & 0xFFFF);
        sum += protocol;
        sum = Add(sum, message);
        while ((sum >> 16) != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        return (ushort)~sum;
    }

    private static uint Add(uint sum, ReadOnlySpan<byte> bytes)
    {
        for (var i = 0; i + 1 < bytes.Length; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(bytes[i..]);
        }

        if ((bytes.Length & 1) != 0)
        {
            sum += (uint)bytes[^1] << 8;
        }

        // Fold often enough that a long message cannot overflow.
        return (sum & 0xFFFF) + (sum >> 16);
    }
}
