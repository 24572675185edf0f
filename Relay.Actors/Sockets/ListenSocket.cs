using System.Net.Sockets;
using Relay.Actors.Configuration;
using Relay.Actors.Native;
using Relay.Actors.Transparent;
using Relay.Actors.Tuning;

namespace Relay.Actors.Sockets;

/// <summary>
/// Opens a route's listening socket. Separate from <see cref="Listening.ListenerActor"/> so a reload can
/// bind every new address first, synchronously, and reject the whole reload if one fails
/// before any running route is touched.
/// </summary>
public static class ListenSocket
{
    /// <summary>Binds and listens on <paramref name="route"/>'s address; on failure, a one-line problem.</summary>
    /// <param name="freeBind">
    /// Bind even if the address is not (yet) this host's (IP_FREEBIND): for the cluster's
    /// floating service address only, since elsewhere a mistyped address must fail the bind.
    /// </param>
    public static bool TryOpen(RouteSettings route, out Socket? socket, out string problem, bool freeBind = false)
    {
        socket = null;
        problem = "";
        try
        {
            socket = new Socket(route.Listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            // Restarting the relay must not wait for old connections in TIME_WAIT: SO_REUSEADDR.
            // Set raw, because .NET's ReuseAddress on Linux also sets SO_REUSEPORT, which would
            // let a second process bind the same port and silently take half the connections.
            socket.SetRawSocketOption(SysSocket.SOL_SOCKET, SysSocket.SO_REUSEADDR, BitConverter.GetBytes(1));
            ApplyListenerOptions(route, socket);
            if (freeBind)
            {
                var v6 = route.Listen.AddressFamily == AddressFamily.InterNetworkV6;
                socket.SetRawSocketOption(v6 ? Inet.SOL_IPV6 : Inet.SOL_IP, v6 ? Inet.IPV6_FREEBIND : Inet.IP_FREEBIND, BitConverter.GetBytes(1));
            }

            socket.Bind(route.Listen);
            socket.Listen(route.Backlog);
            return true;
        }
        catch (SocketException e)
        {
            socket?.Dispose();
            socket = null;
            problem = e.SocketErrorCode switch
            {
                SocketError.AddressAlreadyInUse => $"route {route.Name}: cannot listen on {route.Listen}: address already in use",
                SocketError.AddressNotAvailable => $"route {route.Name}: cannot listen on {route.Listen}: no such local address",
                SocketError.AccessDenied => $"route {route.Name}: cannot listen on {route.Listen}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
                _ => $"route {route.Name}: cannot listen on {route.Listen}: {e.Message}",
            };
            return false;
        }
        catch (SocketTuningException e)
        {
            socket?.Dispose();
            socket = null;
            problem = $"route {route.Name}: {e.Message}";
            return false;
        }
    }

    /// <summary>
    /// Takes over a socket another listener of the same address was using (a reload): the
    /// route's client-side options and backlog are applied again, since they may have changed.
    /// listen(2) on a listening socket only updates its backlog, and connections waiting in
    /// the queue stay there for the new acceptors. An option changed back to <c>auto</c> cannot
    /// be unset on a live socket; it keeps its old value until the relay restarts.
    /// </summary>
    public static bool TryAdopt(RouteSettings route, Socket socket, out string problem)
    {
        problem = "";
        try
        {
            ApplyListenerOptions(route, socket);
            socket.Listen(route.Backlog);
            return true;
        }
        catch (Exception e) when (e is SocketException or SocketTuningException or ObjectDisposedException)
        {
            problem = $"route {route.Name}: cannot take over the socket on {route.Listen}: {e.Message}";
            return false;
        }
    }

    /// <summary>
    /// Client-side options go on the listener: accepted sockets inherit them, and buffers and
    /// MSS must be in place before the handshake to take effect. A TPROXY route's listener
    /// must be IP_TRANSPARENT: TPROXY delivers connections addressed to foreign hosts, and
    /// only such a socket may accept them.
    /// </summary>
    private static void ApplyListenerOptions(RouteSettings route, Socket socket)
    {
        SocketTuner.Apply(socket, route.Circuit.ClientSide);
        if (route.Transparent?.Interception == Interception.Tproxy)
        {
            TransparentSockets.MakeTransparent(socket, $"route {route.Name} (interception = tproxy)");
        }
    }
}
