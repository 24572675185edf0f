using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Relay.Actors.Dispatch;
using Relay.Actors.Native;

namespace Relay.Actors.Sockets;

/// <summary>
/// INTERNAL API. connect(2) on a non-blocking socket, completed through the core event loop.
/// .NET's ConnectAsync would register the socket with the runtime's own epoll thread for its
/// whole life, so every later readiness edge would wake that thread too; the relay keeps its
/// circuit sockets on the core thread's epoll alone.
/// </summary>
internal static unsafe class NonBlockingConnect
{
    /// <summary>Starts connecting. Returns Success (connected at once), WouldBlock (wait for writable) or the error.</summary>
    public static SocketError Start(Socket socket, IPEndPoint endpoint)
    {
        Span<byte> address = stackalloc byte[CircuitSockets.MaxAddressLength];
        var length = CircuitSockets.WriteAddress(endpoint, address);
        var fd = (int)socket.SafeHandle.DangerousGetHandle();
        int result;
        fixed (byte* p = address)
        {
            result = SysSocket.Connect(fd, p, length);
        }

        if (result == 0)
        {
            return SocketError.Success;
        }

        var errno = Marshal.GetLastPInvokeError();
        return errno == Errno.EINPROGRESS ? SocketError.WouldBlock : Errno.ToSocketError(errno);
    }

    /// <summary>
    /// After the socket reported ready: the connect's outcome (SO_ERROR). The socket must have
    /// been registered with the event loop after <see cref="Start"/>: a socket in SYN_SENT
    /// polls as nothing at all, so its first readiness is the handshake's end or its failure.
    /// (Registered before connect(2), the fresh socket's CLOSE state reads as EPOLLOUT|EPOLLHUP
    /// and a TCP_INFO query was needed to tell that edge apart: one getsockopt per circuit.)
    /// <para>
    /// A failed connect always raises EPOLLERR (and EPOLLHUP) with its edge, so an edge
    /// without either is a connect that succeeded, and only a faulted one pays for the
    /// SO_ERROR query that names the error. HAProxy skips the query the same way.
    /// </para>
    /// </summary>
    public static SocketError Finish(SafeSocketHandle socket, IoRegistration io) =>
        io.Faulted ? Finish(CircuitSockets.View(socket)) : SocketError.Success;

    /// <summary>The connect's outcome read from SO_ERROR, for a socket whose readiness came with a fault (or is not known).</summary>
    public static SocketError Finish(Socket socket)
    {
        Span<byte> value = stackalloc byte[4];
        try
        {
            socket.GetRawSocketOption(SysSocket.SOL_SOCKET, SysSocket.SO_ERROR, value);
            return Errno.ToSocketError(MemoryMarshal.Read<int>(value));
        }
        catch (SocketException e)
        {
            return e.SocketErrorCode;
        }
    }
}
