using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Relay.Actors.Circuits.ProxyProtocol;

/// <summary>
/// Strict parser for PROXY protocol v1 and v2 headers
/// (haproxy.org/download/2.9/doc/proxy-protocol.txt, cited below as "spec §n").
/// <para>
/// It is given whatever bytes have arrived so far and answers Complete (with the header's
/// length, so exactly that many bytes are consumed and the payload stays in the socket),
/// Incomplete (a valid prefix: wait for more) or Invalid. Garbage is recognised from its first
/// bytes, so a client that is not a proxy is turned away at once instead of at the timeout.
/// It never throws: every path returns a result, which the fuzz tests check.
/// </para>
/// </summary>
public static class ProxyHeaderParser
{
    /// <summary>spec §2.1: "a 108-byte buffer is always enough" (107 bytes plus a NUL).</summary>
    public const int MaxV1Length = 107;

    /// <summary>
    /// The longest v2 header accepted, TLVs included. The format allows 16 + 65535 bytes, but
    /// the addresses take at most 216 and the TLVs proxies send in practice (ALPN, authority,
    /// cloud endpoint ids, SSL summary) a few hundred: 4 KiB bounds what an unauthenticated
    /// peer can make the relay buffer, as HAProxy's buffer size bounds it there.
    /// </summary>
    public const int MaxV2Length = 4096;

    /// <summary>The largest number of bytes worth looking at before a verdict is certain.</summary>
    public const int MaxLength = MaxV2Length;

    /// <summary>spec §2.2: the 12-byte v2 signature, chosen never to start a valid v1 header or HTTP request.</summary>
    internal static ReadOnlySpan<byte> V2Signature => [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

    internal static ReadOnlySpan<byte> V1Prefix => "PROXY "u8;

    private const int V2FixedLength = 16;

    /// <summary>Parses the start of <paramref name="data"/>, never throwing.</summary>
    public static ProxyParseResult Parse(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return ProxyParseResult.NeedMore;
        }

        return data[0] switch
        {
            (byte)'P' => ParseV1(data),
            0x0D => ParseV2(data),
            _ => ProxyParseResult.Bad("does not start with a PROXY protocol signature"),
        };
    }

    // ------------------------------------------------------------------ v1 (spec §2.1)

    private static ProxyParseResult ParseV1(ReadOnlySpan<byte> data)
    {
        var prefixLength = Math.Min(data.Length, V1Prefix.Length);
        if (!data[..prefixLength].SequenceEqual(V1Prefix[..prefixLength]))
        {
            return ProxyParseResult.Bad("does not start with a PROXY protocol signature");
        }

        // Look for the CRLF within the first 107 bytes, rejecting anything that is not
        // printable US-ASCII on the way, so binary garbage fails before the line is complete.
        var window = data[..Math.Min(data.Length, MaxV1Length)];
        var end = -1;
        for (var i = 0; i < window.Length; i++)
        {
            var b = window[i];
            if (b == (byte)'\r')
            {
                if (i + 1 < window.Length && window[i + 1] != (byte)'\n')
                {
                    return ProxyParseResult.Bad("v1: CR not followed by LF");
                }

                if (i + 1 < window.Length)
                {
                    end = i;
                    break;
                }

                continue; // the LF may still arrive
            }

            if (b is < 0x20 or > 0x7E)
            {
                return ProxyParseResult.Bad("v1: not a printable US-ASCII line");
            }
        }

        if (end < 0)
        {
            return data.Length >= MaxV1Length
                ? ProxyParseResult.Bad($"v1: no CRLF within {MaxV1Length} bytes")
                : ProxyParseResult.NeedMore;
        }

        var line = Encoding.ASCII.GetString(data[V1Prefix.Length..end]);
        var length = end + 2;
        var fields = line.Split(' ');
        switch (fields[0])
        {
            case "UNKNOWN":
                // spec §2.1: the receiver must ignore anything after UNKNOWN up to the CRLF.
                return ProxyParseResult.Done(new ProxyHeader(1, null, null), length);

            case "TCP4" or "TCP6":
                if (fields.Length != 5)
                {
                    return ProxyParseResult.Bad("v1: expected PROXY TCPx SRC DST SPORT DPORT separated by single spaces");
                }

                var family = fields[0] == "TCP4" ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6;
                if (!TryParseV1Address(fields[1], family, out var source) || !TryParseV1Address(fields[2], family, out var destination))
                {
                    return ProxyParseResult.Bad($"v1: address is not a valid {fields[0]} address");
                }

                if (!TryParseV1Port(fields[3], out var sourcePort) || !TryParseV1Port(fields[4], out var destinationPort))
                {
                    return ProxyParseResult.Bad("v1: port is not a number from 0 to 65535");
                }

                return ProxyParseResult.Done(
                    new ProxyHeader(1, new IPEndPoint(source, sourcePort), new IPEndPoint(destination, destinationPort)), length);

            default:
                return ProxyParseResult.Bad("v1: protocol must be TCP4, TCP6 or UNKNOWN");
        }
    }

    /// <summary>
    /// Dotted quads for TCP4 (four decimal octets, no leading zeros: .NET's IPAddress.Parse
    /// would also take "1" or "0x7f.1", which the spec does not), plain IPv6 for TCP6.
    /// </summary>
    private static bool TryParseV1Address(string text, AddressFamily family, out IPAddress address)
    {
        address = IPAddress.None;
        if (family == AddressFamily.InterNetwork)
        {
            var parts = text.Split('.');
            if (parts.Length != 4)
            {
                return false;
            }

            Span<byte> octets = stackalloc byte[4];
            for (var i = 0; i < 4; i++)
            {
                if (!TryParseDecimal(parts[i], 255, out var octet))
                {
                    return false;
                }

                octets[i] = (byte)octet;
            }

            address = new IPAddress(octets);
            return true;
        }

        if (text.Length is 0 or > 45 || text.AsSpan().IndexOfAny('%', '[', ']') >= 0
            || !IPAddress.TryParse(text, out var parsed) || parsed.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return false;
        }

        address = parsed;
        return true;
    }

    private static bool TryParseV1Port(string text, out int port) => TryParseDecimal(text, 65535, out port);

    /// <summary>1 to 5 ASCII digits, no sign, no leading zero (but "0" itself), at most <paramref name="max"/>.</summary>
    private static bool TryParseDecimal(string text, int max, out int value)
    {
        value = 0;
        if (text.Length is 0 or > 5 || (text.Length > 1 && text[0] == '0'))
        {
            return false;
        }

        foreach (var c in text)
        {
            if (c is < '0' or > '9')
            {
                return false;
            }

            value = (value * 10) + (c - '0');
        }

        return value <= max;
    }

    // ------------------------------------------------------------------ v2 (spec §2.2)

    private static ProxyParseResult ParseV2(ReadOnlySpan<byte> data)
    {
        var signatureLength = Math.Min(data.Length, V2Signature.Length);
        if (!data[..signatureLength].SequenceEqual(V2Signature[..signatureLength]))
        {
            return ProxyParseResult.Bad("does not start with a PROXY protocol signature");
        }

        if (data.Length < V2FixedLength)
        {
            // The version/command and family bytes can be checked as soon as they arrive.
            return data.Length > 12 && data[12] >> 4 != 2 ? ProxyParseResult.Bad("v2: version must be 2") : ProxyParseResult.NeedMore;
        }

        var versionCommand = data[12];
        if (versionCommand >> 4 != 2)
        {
            return ProxyParseResult.Bad("v2: version must be 2");
        }

        var command = versionCommand & 0x0F;
        if (command > 1)
        {
            return ProxyParseResult.Bad("v2: command must be LOCAL or PROXY");
        }

        var family = data[13] >> 4;      // 0 AF_UNSPEC, 1 AF_INET, 2 AF_INET6, 3 AF_UNIX
        var transport = data[13] & 0x0F; // 0 UNSPEC, 1 STREAM, 2 DGRAM
        if (family > 3 || transport > 2)
        {
            return ProxyParseResult.Bad("v2: unknown address family or transport");
        }

        var length = V2FixedLength + BinaryPrimitives.ReadUInt16BigEndian(data[14..16]);
        if (length > MaxV2Length)
        {
            return ProxyParseResult.Bad($"v2: header of {length} bytes is longer than the {MaxV2Length} accepted");
        }

        var addressLength = family switch
        {
            1 => 12,  // two IPv4 addresses and two ports
            2 => 36,  // two IPv6 addresses and two ports
            3 => 216, // two 108-byte AF_UNIX paths
            _ => 0,
        };
        if (length - V2FixedLength < addressLength)
        {
            return ProxyParseResult.Bad("v2: length too short for its address family");
        }

        if (data.Length < length)
        {
            return ProxyParseResult.NeedMore;
        }

        // spec §2.2.7: TLVs follow the addresses; unknown ones are skipped, but each must fit.
        var tlvs = data[(V2FixedLength + addressLength)..length];
        while (!tlvs.IsEmpty)
        {
            if (tlvs.Length < 3)
            {
                return ProxyParseResult.Bad("v2: truncated TLV");
            }

            var tlvLength = BinaryPrimitives.ReadUInt16BigEndian(tlvs[1..3]);
            if (3 + tlvLength > tlvs.Length)
            {
                return ProxyParseResult.Bad("v2: TLV longer than the header");
            }

            tlvs = tlvs[(3 + tlvLength)..];
        }

        if (command == 0)
        {
            // spec §2.2: LOCAL is the proxy's own connection (a health check); the receiver
            // must use the real connection endpoints and ignore the address block.
            return ProxyParseResult.Done(new ProxyHeader(2, null, null), length);
        }

        if (family == 0 || family == 3)
        {
            // AF_UNSPEC or AF_UNIX: no IP address to learn; the real peer stands in (spec §2.2).
            return transport == 2
                ? ProxyParseResult.Bad("v2: a datagram transport cannot precede a TCP stream")
                : ProxyParseResult.Done(new ProxyHeader(2, null, null), length);
        }

        if (transport != 1)
        {
            return ProxyParseResult.Bad("v2: an IP family must come with the STREAM transport");
        }

        var addresses = data[V2FixedLength..];
        IPEndPoint source, destination;
        if (family == 1)
        {
            source = new IPEndPoint(new IPAddress(addresses[..4]), BinaryPrimitives.ReadUInt16BigEndian(addresses[8..10]));
            destination = new IPEndPoint(new IPAddress(addresses[4..8]), BinaryPrimitives.ReadUInt16BigEndian(addresses[10..12]));
        }
        else
        {
            source = new IPEndPoint(new IPAddress(addresses[..16]), BinaryPrimitives.ReadUInt16BigEndian(addresses[32..34]));
            destination = new IPEndPoint(new IPAddress(addresses[16..32]), BinaryPrimitives.ReadUInt16BigEndian(addresses[34..36]));
        }

        return ProxyParseResult.Done(new ProxyHeader(2, source, destination), length);
    }
}
