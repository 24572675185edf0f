using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Akka.Actor;
using Relay.Actors.Configuration;
using Relay.Actors.Native;
using Relay.Actors.Tuning;

namespace Relay.Actors.Sockets;

/// <summary>
/// INTERNAL API. Binds the upstream socket of a forward route's circuit to the node's egress
/// VIP (<c>relay.cluster.egress-vip</c>) before it connects, so the server's side of the
/// circuit is addressed to the floating address and can move to another node with it: bound
/// to the node's own address, the server's packets would keep going to this node whatever
/// happened to the circuit.
/// <list type="bullet">
/// <item>Port 0 with IP_BIND_ADDRESS_NO_PORT: the kernel picks the port at connect, unique per
/// 4-tuple, as for an unbound socket. A port picked at bind would have to be unique per address,
/// so one egress VIP could carry only the ephemeral range (28,232 ports by default) of
/// upstream connections in all.</item>
/// <item>IP_FREEBIND (IPV6_FREEBIND): the bind never fails because the address has just been
/// removed (a hand-over, a release racing the connect). The connect then fails as a connect
/// does: IPv4 answers ENETUNREACH at once (measured on 6.18); IPv6 sends the SYN, whose answer
/// goes to the address's new owner and never completes this connect, so it ends at
/// connect-timeout.</item>
/// <item>An upstream of the other address family than the egress VIP connects unbound, from the
/// node's own address; a transparent route keeps its own source (<c>upstream-source</c>).</item>
/// </list>
/// </summary>
internal static unsafe class EgressSource
{
    /// <summary>
    /// Binds <paramref name="upstream"/> to the egress VIP of the node running in
    /// <paramref name="system"/>, if it has one and <paramref name="route"/> is a forward route.
    /// </summary>
    /// <exception cref="SocketTuningException">The kernel refused the bind: one line naming the address and errno.</exception>
    public static void BindForward(Socket upstream, IPEndPoint destination, RouteSettings route, ActorSystem system)
    {
        // A dictionary read, and only for forward routes; a node without an egress VIP stops here.
        if (route.Transparent is null && system.TryGetExtension<RelayNodeContext>(out var node) && node.EgressAddress is { } egress)
        {
            Bind(upstream, egress, destination);
        }
    }

    /// <summary>
    /// Binds <paramref name="upstream"/> to <paramref name="egress"/>, port 0, when
    /// <paramref name="destination"/> is of the same address family; returns whether it did.
    /// </summary>
    /// <exception cref="SocketTuningException">The kernel refused an option or the bind: one line naming the address and errno.</exception>
    public static bool Bind(Socket upstream, IPAddress egress, IPEndPoint destination)
    {
        if (egress.AddressFamily != destination.AddressFamily)
        {
            return false;
        }

        var fd = (int)upstream.SafeHandle.DangerousGetHandle();
        var v6 = egress.AddressFamily == AddressFamily.InterNetworkV6;
        SetOption(fd, v6 ? Inet.SOL_IPV6 : Inet.SOL_IP, v6 ? Inet.IPV6_FREEBIND : Inet.IP_FREEBIND, egress,
            v6 ? "IPV6_FREEBIND" : "IP_FREEBIND");
        // SOL_IP even on an IPv6 socket: the kernel keeps the flag for both families (inet_sock).
        SetOption(fd, Inet.SOL_IP, Inet.IP_BIND_ADDRESS_NO_PORT, egress, "IP_BIND_ADDRESS_NO_PORT");

        Span<byte> address = stackalloc byte[CircuitSockets.MaxAddressLength];
        var length = CircuitSockets.WriteAddress(new IPEndPoint(egress, 0), address);
        int result;
        fixed (byte* p = address)
        {
            result = SysSocket.Bind(fd, p, (uint)length);
        }

        if (result != 0)
        {
            throw Refused("bind", egress, Marshal.GetLastPInvokeError());
        }

        return true;
    }

    private static void SetOption(int fd, int level, int name, IPAddress egress, string option)
    {
        var on = 1;
        if (SysSocket.SetSockOpt(fd, level, name, &on, sizeof(int)) != 0)
        {
            throw Refused($"setsockopt {option}", egress, Marshal.GetLastPInvokeError());
        }
    }

    private static SocketTuningException Refused(string call, IPAddress egress, int errno) =>
        new("egress-vip", egress.ToString(), $"cannot bind the upstream socket to the egress VIP {egress}: {call}: {Errno.Describe(errno)}");
}
