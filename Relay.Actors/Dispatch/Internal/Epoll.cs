using System.Runtime.InteropServices;

namespace Relay.Actors.Dispatch.Internal;

/// <summary>
/// INTERNAL API. epoll(7), eventfd(2) and the socket calls the core event loop makes itself.
/// Errors come back as -1 with errno in <see cref="Marshal.GetLastPInvokeError"/>.
/// </summary>
internal static unsafe partial class Epoll
{
    public const int EPOLL_CTL_ADD = 1;
    public const int EPOLL_CTL_DEL = 2;
    public const uint EPOLLIN = 0x001;
    public const uint EPOLLOUT = 0x004;
    public const uint EPOLLERR = 0x008;
    public const uint EPOLLHUP = 0x010;
    public const uint EPOLLRDHUP = 0x2000;
    public const uint EPOLLET = 0x80000000;
    public const uint EPOLLEXCLUSIVE = 1u << 28;
    public const int SOCK_NONBLOCK = 0x800;
    public const int SOCK_CLOEXEC = 0x80000;
    public const int EAGAIN = 11;
    public const int ECONNABORTED = 103;
    public const int EPOLL_CLOEXEC = 0x80000;
    public const int EFD_CLOEXEC = 0x80000;
    public const int EFD_NONBLOCK = 0x800;
    public const int EINTR = 4;
    public const int EINPROGRESS = 115;

    // <sys/socket.h>, <netinet/tcp.h>
    public const int SOL_SOCKET = 1;
    public const int SO_REUSEADDR = 2;
    public const int SO_ERROR = 4;
    public const int IPPROTO_TCP = 6;
    public const int TCP_INFO = 11;

    /// <summary>
    /// struct epoll_event is packed on x86-64 (12 bytes: events at 0, data at 4) and naturally
    /// aligned elsewhere (16 bytes: data at 8), so events are read from raw memory.
    /// </summary>
    public static readonly int EventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;

    public static readonly int DataOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;

    [LibraryImport("libc", EntryPoint = "epoll_create1", SetLastError = true)]
    public static partial int Create(int flags);

    [LibraryImport("libc", EntryPoint = "epoll_ctl", SetLastError = true)]
    public static partial int Control(int epfd, int op, int fd, byte* ev);

    [LibraryImport("libc", EntryPoint = "epoll_wait", SetLastError = true)]
    public static partial int Wait(int epfd, byte* events, int maxEvents, int timeoutMs);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initval, int flags);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "accept4", SetLastError = true)]
    public static partial int Accept4(int fd, byte* address, int* length, int flags);

    [LibraryImport("libc", EntryPoint = "connect", SetLastError = true)]
    public static partial int Connect(int fd, byte* address, int length);

    /// <summary>Adds <paramref name="fd"/> with <paramref name="events"/> and <paramref name="data"/>.</summary>
    public static int Add(int epfd, int fd, uint events, ulong data)
    {
        var ev = stackalloc byte[16];
        *(uint*)ev = events;
        *(ulong*)(ev + DataOffset) = data;
        return Control(epfd, EPOLL_CTL_ADD, fd, ev);
    }

    public static int Remove(int epfd, int fd)
    {
        var ev = stackalloc byte[16];
        return Control(epfd, EPOLL_CTL_DEL, fd, ev);
    }

    /// <summary>The Linux errno values a connect or accept can end with, as .NET names them.</summary>
    public static System.Net.Sockets.SocketError ToSocketError(int errno) => errno switch
    {
        0 => System.Net.Sockets.SocketError.Success,
        111 => System.Net.Sockets.SocketError.ConnectionRefused,     // ECONNREFUSED
        113 => System.Net.Sockets.SocketError.HostUnreachable,       // EHOSTUNREACH
        101 => System.Net.Sockets.SocketError.NetworkUnreachable,    // ENETUNREACH
        110 => System.Net.Sockets.SocketError.TimedOut,              // ETIMEDOUT
        104 => System.Net.Sockets.SocketError.ConnectionReset,       // ECONNRESET
        103 => System.Net.Sockets.SocketError.ConnectionAborted,     // ECONNABORTED
        32 => System.Net.Sockets.SocketError.Shutdown,               // EPIPE (as .NET maps it)
        107 => System.Net.Sockets.SocketError.NotConnected,          // ENOTCONN
        9 => System.Net.Sockets.SocketError.OperationAborted,        // EBADF: closed under the caller
        99 => System.Net.Sockets.SocketError.AddressNotAvailable,    // EADDRNOTAVAIL
        100 => System.Net.Sockets.SocketError.NetworkDown,           // ENETDOWN
        112 => System.Net.Sockets.SocketError.HostDown,              // EHOSTDOWN
        13 or 1 => System.Net.Sockets.SocketError.AccessDenied,      // EACCES, EPERM (a firewall rule)
        24 or 23 => System.Net.Sockets.SocketError.TooManyOpenSockets, // EMFILE, ENFILE
        _ => System.Net.Sockets.SocketError.SocketError,
    };
}
