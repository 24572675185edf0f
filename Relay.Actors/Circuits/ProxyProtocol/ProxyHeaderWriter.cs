using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Relay.Actors.Circuits.ProxyProtocol;

/// <summary>
/// Builds the PROXY protocol header a route sends to its upstream before any client byte,
/// so the server learns who the client is (haproxy.org/download/2.9/doc/proxy-protocol.txt).
/// </summary>
public static class ProxyHeaderWriter
{
    /// <summary>The longest header this writer makes: v1 with two full IPv6 addresses is 104 bytes.</summary>
    public const int MaxLength = ProxyHeaderParser.MaxV1Length;

    /// <summary>
    /// The header for a TCP connection from <paramref name="source"/> to <paramref name="destination"/>.
    /// Both addresses must be of one family (spec §2.1); an IPv4 client of a dual-stack
    /// listener is written as IPv4, and a genuine mix is written as IPv6 (IPv4-mapped).
    /// </summary>
    public static byte[] Build(ProxyProtocolVersion version, IPEndPoint source, IPEndPoint destination)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        var (from, to) = SameFamily(ClientAddress.Normalize(source), ClientAddress.Normalize(destination));
        return version switch
        {
            ProxyProtocolVersion.V1 => BuildV1(from, to),
            ProxyProtocolVersion.V2 => BuildV2(from, to),
            _ => throw new ArgumentOutOfRangeException(nameof(version), version, "no header is sent when the PROXY protocol is off"),
        };
    }

    private static (IPEndPoint, IPEndPoint) SameFamily(IPEndPoint source, IPEndPoint destination)
    {
        if (source.AddressFamily == destination.AddressFamily)
        {
            return (source, destination);
        }

        return (new IPEndPoint(source.Address.MapToIPv6(), source.Port), new IPEndPoint(destination.Address.MapToIPv6(), destination.Port));
    }

    private static byte[] BuildV1(IPEndPoint source, IPEndPoint destination)
    {
        var protocol = source.AddressFamily == AddressFamily.InterNetwork ? "TCP4" : "TCP6";
        // IPAddress.ToString gives the canonical text (dotted quad; RFC 5952 for IPv6), and the
        // scope id is dropped: a "%eth0" suffix is not part of the v1 grammar.
        var line = $"PROXY {protocol} {WithoutScope(source.Address)} {WithoutScope(destination.Address)} {source.Port} {destination.Port}\r\n";
        return Encoding.ASCII.GetBytes(line);
    }

    private static string WithoutScope(IPAddress address) =>
        address.AddressFamily == AddressFamily.InterNetworkV6 && address.ScopeId != 0
            ? new IPAddress(address.GetAddressBytes()).ToString()
            : address.ToString();

    private static byte[] BuildV2(IPEndPoint source, IPEndPoint destination)
    {
        var v4 = source.AddressFamily == AddressFamily.InterNetwork;
        var addressLength = v4 ? 12 : 36;
        var header = new byte[16 + addressLength];
        ProxyHeaderParser.V2Signature.CopyTo(header);
        header[12] = 0x21;                   // version 2, command PROXY
        header[13] = v4 ? (byte)0x11 : (byte)0x21; // AF_INET or AF_INET6, STREAM
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(14), (ushort)addressLength);
        var block = header.AsSpan(16);
        var size = v4 ? 4 : 16;
        source.Address.TryWriteBytes(block[..size], out _);
        destination.Address.TryWriteBytes(block[size..(2 * size)], out _);
        BinaryPrimitives.WriteUInt16BigEndian(block[(2 * size)..], (ushort)source.Port);
        BinaryPrimitives.WriteUInt16BigEndian(block[((2 * size) + 2)..], (ushort)destination.Port);
        return header;
    }
}
