using System.Net.Sockets;
using System.Runtime.InteropServices;
using Relay.Actors.Native;

namespace Relay.Actors.Sockets;

/// <summary>
/// INTERNAL API. The data-path system calls of a circuit, made on the descriptor itself.
/// <see cref="Socket.Receive(byte[], int, int, SocketFlags, out SocketError)"/> adds a
/// SafeHandle reference count, mode checks and, for a socket whose descriptor .NET did not
/// make non-blocking itself, a detour through the runtime's async engine that would block;
/// the circuit's actors own their descriptors on one thread and need none of that.
/// Results follow .NET's conventions: bytes or 0 with <see cref="SocketError.Success"/>,
/// <see cref="SocketError.WouldBlock"/> for EAGAIN, the error otherwise.
/// </summary>
internal static unsafe class RawSocket
{
    // Never raise SIGPIPE on a peer that has gone (the runtime ignores the signal too, but a
    // send should not depend on that).
    private const int SendFlags = SysSocket.MSG_NOSIGNAL;
    // More is coming at once (here: the FIN): TCP holds a short tail so the bytes and the FIN
    // leave in one segment, as HAProxy's send(MSG_MORE) + shutdown does.
    private const int SendBeforeFinFlags = SysSocket.MSG_NOSIGNAL | SysSocket.MSG_MORE;

    /// <summary>recv(2) into <paramref name="buffer"/>[0..<paramref name="count"/>).</summary>
    public static int Receive(SafeSocketHandle socket, byte[] buffer, int count, out SocketError error) =>
        Receive(socket, buffer, 0, count, 0, out error);

    /// <summary>recv(2) into <paramref name="buffer"/>[<paramref name="offset"/>..+<paramref name="count"/>).</summary>
    public static int Receive(SafeSocketHandle socket, byte[] buffer, int offset, int count, out SocketError error) =>
        Receive(socket, buffer, offset, count, 0, out error);

    /// <inheritdoc cref="Receive(SafeSocketHandle, byte[], int, out SocketError)"/>
    public static int Receive(Socket socket, byte[] buffer, int count, out SocketError error) =>
        Receive(socket.SafeHandle, buffer, 0, count, 0, out error);

    /// <summary>
    /// recv(2) with MSG_PEEK: copies waiting bytes without consuming them (the PROXY header
    /// reader looks at a header before it takes exactly the header, leaving the payload).
    /// </summary>
    public static int Peek(Socket socket, byte[] buffer, int count, out SocketError error) =>
        Receive(socket.SafeHandle, buffer, 0, count, SysSocket.MSG_PEEK, out error);

    private static int Receive(SafeSocketHandle socket, byte[] buffer, int offset, int count, int flags, out SocketError error)
    {
        if (IsClosed(socket, out error))
        {
            return 0;
        }

        var fd = (int)socket.DangerousGetHandle();
        fixed (byte* p = buffer)
        {
            while (true)
            {
                var read = SysSocket.Recv(fd, p + offset, count, flags);
                if (read >= 0)
                {
                    error = SocketError.Success;
                    return (int)read;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno != Errno.EINTR)
                {
                    error = errno == Errno.EAGAIN ? SocketError.WouldBlock : Errno.ToSocketError(errno);
                    return 0;
                }
            }
        }
    }

    /// <summary>
    /// send(2) of <paramref name="buffer"/>[<paramref name="offset"/>..+<paramref name="count"/>).
    /// <paramref name="finFollows"/> promises a shutdown or close right after: the kernel may
    /// then hold a short tail back to send it with the FIN.
    /// </summary>
    public static int Send(SafeSocketHandle socket, byte[] buffer, int offset, int count, out SocketError error, bool finFollows = false)
    {
        if (IsClosed(socket, out error))
        {
            return 0;
        }

        var fd = (int)socket.DangerousGetHandle();
        fixed (byte* p = buffer)
        {
            while (true)
            {
                var sent = SysSocket.Send(fd, p + offset, count, finFollows ? SendBeforeFinFlags : SendFlags);
                if (sent >= 0)
                {
                    error = SocketError.Success;
                    return (int)sent;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno != Errno.EINTR)
                {
                    error = errno == Errno.EAGAIN ? SocketError.WouldBlock : Errno.ToSocketError(errno);
                    return 0;
                }
            }
        }
    }

    /// <inheritdoc cref="Send(SafeSocketHandle, byte[], int, int, out SocketError, bool)"/>
    public static int Send(Socket socket, byte[] buffer, int offset, int count, out SocketError error, bool finFollows = false) =>
        Send(socket.SafeHandle, buffer, offset, count, out error, finFollows);

    /// <inheritdoc cref="ShutdownSend(SafeSocketHandle)"/>
    public static SocketError ShutdownSend(Socket socket) => ShutdownSend(socket.SafeHandle);

    /// <summary>shutdown(SHUT_WR): sends the FIN after the bytes already written.</summary>
    public static SocketError ShutdownSend(SafeSocketHandle socket)
    {
        if (IsClosed(socket, out var closed))
        {
            return closed;
        }

        var fd = (int)socket.DangerousGetHandle();
        return SysSocket.Shutdown(fd, SysSocket.SHUT_WR) == 0 ? SocketError.Success : Errno.ToSocketError(Marshal.GetLastPInvokeError());
    }

    /// <summary>
    /// A descriptor number outlives its close and may name a new socket at once, so a socket
    /// the supervisor has closed must never reach a system call. The check is race-free
    /// because a circuit's sockets are closed on the thread that does its I/O.
    /// </summary>
    private static bool IsClosed(SafeSocketHandle socket, out SocketError error)
    {
        var closed = socket.IsClosed;
        error = closed ? SocketError.OperationAborted : SocketError.Success;
        return closed;
    }
}
