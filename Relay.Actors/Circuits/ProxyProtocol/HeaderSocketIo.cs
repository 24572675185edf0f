using System.Net.Sockets;
using System.Runtime.InteropServices;
using Relay.Actors.Dispatch.Internal;

namespace Relay.Actors.Circuits.ProxyProtocol;

/// <summary>
/// INTERNAL API. recv(2) and send(2) straight on the descriptor for the PROXY header: MSG_PEEK
/// to look at a header without taking the payload behind it, and no reliance on the managed
/// <see cref="Socket"/>'s own idea of its blocking mode (the data path wraps descriptors that
/// are non-blocking from accept4, which the managed object may not know).
/// </summary>
internal static unsafe partial class HeaderSocketIo
{
    private const int MsgPeek = 0x2;
    private const int MsgNoSignal = 0x4000;

    /// <summary>Copies up to <paramref name="count"/> waiting bytes without consuming them.</summary>
    public static int Peek(Socket socket, byte[] buffer, int count, out SocketError error) =>
        Receive(socket, buffer, count, MsgPeek, out error);

    /// <summary>Consumes up to <paramref name="count"/> bytes.</summary>
    public static int Read(Socket socket, byte[] buffer, int count, out SocketError error) =>
        Receive(socket, buffer, count, 0, out error);

    public static int Write(Socket socket, byte[] buffer, out SocketError error)
    {
        var fd = (int)socket.SafeHandle.DangerousGetHandle();
        while (true)
        {
            nint sent;
            fixed (byte* p = buffer)
            {
                sent = SendTo(fd, p, buffer.Length, MsgNoSignal);
            }

            if (sent >= 0)
            {
                error = SocketError.Success;
                return (int)sent;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno != Epoll.EINTR)
            {
                error = errno == Epoll.EAGAIN ? SocketError.WouldBlock : Epoll.ToSocketError(errno);
                return 0;
            }
        }
    }

    private static int Receive(Socket socket, byte[] buffer, int count, int flags, out SocketError error)
    {
        var fd = (int)socket.SafeHandle.DangerousGetHandle();
        while (true)
        {
            nint read;
            fixed (byte* p = buffer)
            {
                read = Recv(fd, p, count, flags);
            }

            if (read >= 0)
            {
                error = SocketError.Success;
                return (int)read;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno != Epoll.EINTR)
            {
                error = errno == Epoll.EAGAIN ? SocketError.WouldBlock : Epoll.ToSocketError(errno);
                return 0;
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    private static partial nint Recv(int fd, byte* buffer, nint count, int flags);

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    private static partial nint SendTo(int fd, byte* buffer, nint count, int flags);
}
