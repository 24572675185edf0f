using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Relay.Actors.Configuration;
using Relay.Actors.Native;

namespace Relay.Actors.Transparent;

/// <summary>
/// Where an intercepted connection was going before the gateway rules sent it to the relay.
/// <list type="bullet">
/// <item>REDIRECT/DNAT rewrote the destination; conntrack remembers the original, and
/// <c>getsockopt(SOL_IP, SO_ORIGINAL_DST)</c> (IPv6: <c>SOL_IPV6, IP6T_SO_ORIGINAL_DST</c>)
/// returns it as a <c>sockaddr_in</c>/<c>sockaddr_in6</c>.</item>
/// <item>TPROXY left the packet alone and delivered it to an <c>IP_TRANSPARENT</c> listener,
/// so the accepted socket's own local address (getsockname) is the destination.</item>
/// </list>
/// </summary>
public static class OriginalDestination
{
    /// <summary>
    /// The destination of <paramref name="accepted"/> for a route intercepted with
    /// <paramref name="interception"/>, IPv4-mapped addresses given as IPv4; or null with a
    /// one-line <paramref name="problem"/>.
    /// </summary>
    public static IPEndPoint? Find(Socket accepted, Interception interception, out string problem)
    {
        ArgumentNullException.ThrowIfNull(accepted);
        problem = "";
        IPEndPoint? local;
        try
        {
            local = accepted.LocalEndPoint as IPEndPoint;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            problem = $"getsockname failed: {e.Message}";
            return null;
        }

        if (local is null)
        {
            problem = "the accepted socket has no local address";
            return null;
        }

        local = new IPEndPoint(DestinationPolicy.Normalize(local.Address), local.Port);
        if (interception == Interception.Tproxy)
        {
            return local;
        }

        // Without a NAT entry (a client that connected to the listener itself, or conntrack
        // not loaded) the kernel says ENOENT: the connection's destination really is the
        // local address, which the loop guard then refuses as the relay's own.
        return TryGetRedirected(accepted, local.AddressFamily, out var original) ? original : local;
    }

    /// <summary>getsockopt SO_ORIGINAL_DST for <paramref name="family"/> (the family the connection really uses).</summary>
    internal static bool TryGetRedirected(Socket accepted, AddressFamily family, out IPEndPoint? original)
    {
        original = null;
        Span<byte> buffer = stackalloc byte[28];
        try
        {
            // An IPv4 connection on a dual-stack [::] listener is tracked by IPv4 conntrack:
            // ask SOL_IP, which Linux passes through from an AF_INET6 socket.
            var length = family == AddressFamily.InterNetwork
                ? accepted.GetRawSocketOption(Inet.SOL_IP, Netfilter.SO_ORIGINAL_DST, buffer)
                : accepted.GetRawSocketOption(Inet.SOL_IPV6, Netfilter.IP6T_SO_ORIGINAL_DST, buffer);
            return TryDecode(buffer[..length], out original);
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>
    /// Decodes a Linux <c>struct sockaddr_in</c> (16 bytes: family, port in network order,
    /// address) or <c>struct sockaddr_in6</c> (28 bytes: family, port, flow info, address,
    /// scope id). The family field is in host order (little-endian on the platforms .NET
    /// runs Linux on). IPv4-mapped IPv6 addresses come back as IPv4.
    /// </summary>
    public static bool TryDecode(ReadOnlySpan<byte> sockaddr, out IPEndPoint? endpoint)
    {
        endpoint = null;
        if (sockaddr.Length < 2)
        {
            return false;
        }

        var family = BinaryPrimitives.ReadUInt16LittleEndian(sockaddr);
        if (family == SysSocket.AF_INET && sockaddr.Length >= 8)
        {
            var port = BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..]);
            endpoint = new IPEndPoint(new IPAddress(sockaddr[4..8]), port);
            return port != 0;
        }

        if (family == SysSocket.AF_INET6 && sockaddr.Length >= 24)
        {
            var port = BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..]);
            var scope = sockaddr.Length >= 28 ? BinaryPrimitives.ReadUInt32LittleEndian(sockaddr[24..]) : 0;
            var address = new IPAddress(sockaddr[8..24], scope);
            endpoint = new IPEndPoint(DestinationPolicy.Normalize(address), port);
            return port != 0;
        }

        return false;
    }
}
