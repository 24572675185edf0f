using System.Net.Sockets;
using System.Runtime.InteropServices;
using Relay.Actors.Native;

namespace Relay.Actors.Sockets;

/// <summary>
/// INTERNAL API. accept4(2) on a listening socket watched by the core event loop, returning
/// a non-blocking connected socket (made by <see cref="CircuitSockets"/>, so without the
/// system calls of .NET's Socket constructor). .NET's AcceptAsync would complete on the runtime's epoll
/// thread and hop to the core; the core's own epoll already knows a connection is waiting.
/// </summary>
internal static unsafe class NonBlockingAccept
{
    /// <summary>
    /// Success with a socket, WouldBlock when the queue is empty, or the error (EMFILE and
    /// friends, as <see cref="SocketError"/>).
    /// </summary>
    public static SocketError TryAccept(Socket listener, out Socket? accepted)
    {
        accepted = null;
        var listenFd = (int)listener.SafeHandle.DangerousGetHandle();
        // struct sockaddr_storage. Asking accept4 for the peer's address replaces the
        // getpeername a Socket would make, and a connection reset while it was queued then
        // fails the accept with ECONNABORTED (the kernel cannot name its peer) instead of
        // yielding a socket that has no peer.
        var address = stackalloc byte[128];
        while (true)
        {
            var length = 128;
            var fd = SysSocket.Accept4(listenFd, address, &length, SysSocket.SOCK_NONBLOCK | SysSocket.SOCK_CLOEXEC);
            if (fd >= 0)
            {
                var remote = CircuitSockets.ParseAddress(new ReadOnlySpan<byte>(address, Math.Min(length, 128)));
                accepted = remote is null
                    ? new Socket(new SafeSocketHandle(fd, ownsHandle: true))
                    : CircuitSockets.WrapConnected(fd, remote);
                return SocketError.Success;
            }

            var errno = Marshal.GetLastPInvokeError();
            switch (errno)
            {
                case Errno.EAGAIN:
                    return SocketError.WouldBlock;
                case Errno.EINTR:
                case Errno.ECONNABORTED:
                    // Interrupted, or the client gave up while queued: try the next one.
                    continue;
                default:
                    return Errno.ToSocketError(errno);
            }
        }
    }
}
