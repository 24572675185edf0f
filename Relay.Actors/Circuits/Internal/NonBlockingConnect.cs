using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Relay.Actors.Dispatch.Internal;

namespace Relay.Actors.Circuits.Internal;

/// <summary>
/// INTERNAL API. connect(2) on a non-blocking socket, completed through the core event loop.
/// .NET's ConnectAsync would register the socket with the runtime's own epoll thread for its
/// whole life, so every later readiness edge would wake that thread too; the relay keeps its
/// circuit sockets on the core thread's epoll alone.
/// </summary>
internal static unsafe class NonBlockingConnect
{
    private const byte TcpSynSent = 2;

    /// <summary>Starts connecting. Returns Success (connected at once), WouldBlock (wait for writable) or the error.</summary>
    public static SocketError Start(Socket socket, IPEndPoint endpoint)
    {
        Span<byte> address = stackalloc byte[28];
        address.Clear();
        int length;
        if (endpoint.AddressFamily == AddressFamily.InterNetwork)
        {
            // struct sockaddr_in: family, port (network order), address, zero padding
            MemoryMarshal.Write(address, (ushort)2);
            address[2] = (byte)(endpoint.Port >> 8);
            address[3] = (byte)endpoint.Port;
            endpoint.Address.TryWriteBytes(address[4..8], out _);
            length = 16;
        }
        else
        {
            // struct sockaddr_in6: family, port, flow info, address, scope id
            MemoryMarshal.Write(address, (ushort)10);
            address[2] = (byte)(endpoint.Port >> 8);
            address[3] = (byte)endpoint.Port;
            endpoint.Address.TryWriteBytes(address[8..24], out _);
            MemoryMarshal.Write(address[24..], (uint)endpoint.Address.ScopeId);
            length = 28;
        }

        var fd = (int)socket.SafeHandle.DangerousGetHandle();
        int result;
        fixed (byte* p = address)
        {
            result = Epoll.Connect(fd, p, length);
        }

        if (result == 0)
        {
            return SocketError.Success;
        }

        var errno = Marshal.GetLastPInvokeError();
        return errno == Epoll.EINPROGRESS ? SocketError.WouldBlock : Epoll.ToSocketError(errno);
    }

    /// <summary>
    /// After the socket reported ready: the connect's outcome (SO_ERROR), or WouldBlock if
    /// the handshake is still going (a readiness edge is a hint, not a verdict).
    /// </summary>
    public static SocketError Finish(Socket socket)
    {
        Span<byte> value = stackalloc byte[4];
        Span<byte> info = stackalloc byte[8];
        try
        {
            socket.GetRawSocketOption(Epoll.SOL_SOCKET, Epoll.SO_ERROR, value);
            var error = Epoll.ToSocketError(MemoryMarshal.Read<int>(value));
            if (error != SocketError.Success)
            {
                return error;
            }

            // struct tcp_info starts with tcpi_state: still SYN_SENT means not done yet.
            socket.GetRawSocketOption(Epoll.IPPROTO_TCP, Epoll.TCP_INFO, info);
            return info[0] == TcpSynSent ? SocketError.WouldBlock : SocketError.Success;
        }
        catch (SocketException e)
        {
            return e.SocketErrorCode;
        }
    }
}
