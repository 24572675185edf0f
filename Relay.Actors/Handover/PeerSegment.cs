using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Relay.Actors.Internal;
using Relay.Actors.Native;

namespace Relay.Actors.Handover;

/// <summary>
/// INTERNAL API. A TCP segment without payload or options, as the peer would have sent it,
/// in a whole IPv4 or IPv6 packet for a raw socket: how a restored socket is given the peer's
/// FIN that the old socket had already received. TCP_REPAIR has no way to queue one; CRIU's
/// soccr (send_fin) injects it the same way. Sent to a local address, the packet loops back
/// and the restored socket's 4-tuple takes it.
/// </summary>
internal static class PeerSegment
{
    public const byte Fin = 0x01;
    public const byte Ack = 0x10;

    /// <summary>Room for the largest packet: an IPv6 header and a 20-byte TCP header.</summary>
    public const int MaxBytes = 60;

    private const int TcpHeaderBytes = 20;
    private const byte HopLimit = 64;

    /// <summary>
    /// Writes the packet from <paramref name="source"/> to <paramref name="destination"/> (both
    /// IPv4 or both IPv6; IPv4-mapped addresses must be mapped back by the caller) into
    /// <paramref name="packet"/>; returns its length. The IPv4 header's checksum, identification
    /// and total length are left to the kernel, which fills them for IP_HDRINCL.
    /// </summary>
    public static int Write(Span<byte> packet, IPEndPoint source, IPEndPoint destination, uint sequence, uint acknowledgement, byte flags, ushort window)
    {
        Span<byte> src = stackalloc byte[16];
        Span<byte> dst = stackalloc byte[16];
        source.Address.TryWriteBytes(src, out var addressBytes);
        destination.Address.TryWriteBytes(dst, out _);
        src = src[..addressBytes];
        dst = dst[..addressBytes];

        int ipBytes;
        if (source.AddressFamily == AddressFamily.InterNetwork)
        {
            ipBytes = 20;
            var ip = packet[..ipBytes];
            ip.Clear();
            ip[0] = 0x45;                                                  // version 4, 5 words
            BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(ipBytes + TcpHeaderBytes));
            BinaryPrimitives.WriteUInt16BigEndian(ip[6..], 0x4000);        // don't fragment
            ip[8] = HopLimit;
            ip[9] = Inet.IPPROTO_TCP;
            src.CopyTo(ip[12..]);
            dst.CopyTo(ip[16..]);
        }
        else
        {
            ipBytes = 40;
            var ip = packet[..ipBytes];
            ip.Clear();
            ip[0] = 0x60;                                                  // version 6
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], TcpHeaderBytes); // payload length
            ip[6] = Inet.IPPROTO_TCP;                                      // next header
            ip[7] = HopLimit;
            src.CopyTo(ip[8..]);
            dst.CopyTo(ip[24..]);
        }

        var tcp = packet.Slice(ipBytes, TcpHeaderBytes);
        tcp.Clear();
        BinaryPrimitives.WriteUInt16BigEndian(tcp, (ushort)source.Port);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], (ushort)destination.Port);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], sequence);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], acknowledgement);
        tcp[12] = TcpHeaderBytes / 4 << 4;                                 // data offset, no options
        tcp[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], window);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], InternetChecksum.WithPseudoHeader(src, dst, Inet.IPPROTO_TCP, tcp));
        return ipBytes + TcpHeaderBytes;
    }
}
