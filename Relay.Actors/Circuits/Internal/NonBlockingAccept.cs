using System.Net.Sockets;
using System.Runtime.InteropServices;
using Relay.Actors.Dispatch.Internal;

namespace Relay.Actors.Circuits.Internal;

/// <summary>
/// INTERNAL API. accept4(2) on a listening socket watched by the core event loop, returning
/// a non-blocking connected socket. .NET's AcceptAsync would complete on the runtime's epoll
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
        while (true)
        {
            var fd = Epoll.Accept4(listenFd, null, null, Epoll.SOCK_NONBLOCK | Epoll.SOCK_CLOEXEC);
            if (fd >= 0)
            {
                accepted = new Socket(new SafeSocketHandle(fd, ownsHandle: true));
                return SocketError.Success;
            }

            var errno = Marshal.GetLastPInvokeError();
            switch (errno)
            {
                case Epoll.EAGAIN:
                    return SocketError.WouldBlock;
                case Epoll.EINTR:
                case Epoll.ECONNABORTED:
                    // Interrupted, or the client gave up while queued: try the next one.
                    continue;
                default:
                    return Epoll.ToSocketError(errno);
            }
        }
    }
}
