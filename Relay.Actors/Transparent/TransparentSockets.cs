using System.Net;
using System.Net.Sockets;
using Relay.Actors.Native;
using Relay.Actors.Tuning;

namespace Relay.Actors.Transparent;

/// <summary>
/// INTERNAL API. The socket options of transparent proxying: <c>IP_TRANSPARENT</c> lets a
/// listener accept connections addressed to foreign addresses (TPROXY) and lets an upstream
/// socket bind to an address that is not the relay's (the client's, for
/// <c>upstream-source = client</c>). Both need CAP_NET_ADMIN.
/// </summary>
internal static class TransparentSockets
{
    /// <summary>Sets IP_TRANSPARENT (IPV6_TRANSPARENT on an IPv6 socket).</summary>
    /// <exception cref="SocketTuningException">The kernel refused, with a line that says what is needed.</exception>
    public static void MakeTransparent(Socket socket, string purpose)
    {
        var v6 = socket.AddressFamily == AddressFamily.InterNetworkV6;
        try
        {
            socket.SetRawSocketOption(v6 ? Inet.SOL_IPV6 : Inet.SOL_IP, v6 ? Inet.IPV6_TRANSPARENT : Inet.IP_TRANSPARENT, BitConverter.GetBytes(1));
        }
        catch (SocketException e)
        {
            var option = v6 ? "IPV6_TRANSPARENT" : "IP_TRANSPARENT";
            var why = e.SocketErrorCode == SocketError.AccessDenied
                ? "permission denied (run as root or give the relay CAP_NET_ADMIN)"
                : e.Message;
            throw new SocketTuningException(option, "on", $"cannot set {option} for {purpose}: {why}", e);
        }
    }

    /// <summary>
    /// Makes <paramref name="upstream"/> connect from <paramref name="client"/>'s address
    /// (any port, as HAProxy's <c>usesrc clientip</c>). Reusing the client's port too would
    /// collide with the client's own connection whenever the relay is on the path back.
    /// </summary>
    /// <exception cref="SocketTuningException">The address cannot be used for this destination.</exception>
    public static void BindToClient(Socket upstream, IPEndPoint client, IPEndPoint destination)
    {
        var address = DestinationPolicy.Normalize(client.Address);
        if (address.AddressFamily != destination.AddressFamily)
        {
            throw new SocketTuningException("upstream-source", "client",
                $"cannot connect to {destination} from the client's {address}: the address families differ");
        }

        MakeTransparent(upstream, "upstream-source = client");
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            // Pick the port at connect time, per destination, so one client address can carry
            // more than 64k concurrent upstream connections (the kernel's 4-tuple check).
            try
            {
                upstream.SetRawSocketOption(Inet.SOL_IP, Inet.IP_BIND_ADDRESS_NO_PORT, BitConverter.GetBytes(1));
            }
            catch (SocketException)
            {
                // Older kernels: the bind below then picks the port, which only limits scale.
            }
        }

        try
        {
            upstream.Bind(new IPEndPoint(address, 0));
        }
        catch (SocketException e)
        {
            throw new SocketTuningException("upstream-source", "client", $"cannot bind the upstream socket to the client's {address}: {e.Message}", e);
        }
    }
}
