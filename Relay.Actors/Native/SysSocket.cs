using System.Runtime.InteropServices;

namespace Relay.Actors.Native;

/// <summary>
/// INTERNAL API. &lt;sys/socket.h&gt; (and the SO_* values of asm-generic/socket.h, which
/// x86-64 and arm64 share): the calls of the circuit sockets (accept4, connect, send, recv,
/// shutdown, and the options and names TCP_REPAIR reads and writes) and of the netlink and
/// packet sockets. Errors come back as -1 with errno in <see cref="Marshal.GetLastPInvokeError"/>.
/// </summary>
internal static unsafe partial class SysSocket
{
    public const int AF_INET = 2;
    public const int AF_INET6 = 10;
    public const int AF_NETLINK = 16;
    public const int AF_PACKET = 17;
    public const int SOCK_STREAM = 1;
    public const int SOCK_DGRAM = 2;
    public const int SOCK_RAW = 3;
    public const int SOCK_NONBLOCK = 0x800;
    public const int SOCK_CLOEXEC = 0x80000;

    public const int SOL_SOCKET = 1;
    public const int SO_REUSEADDR = 2;
    public const int SO_ERROR = 4;
    public const int SO_SNDBUF = 7;
    public const int SO_RCVBUF = 8;
    public const int SO_RCVTIMEO = 20;
    /// <summary>SO_SNDBUF past net.core.wmem_max (CAP_NET_ADMIN); the kernel doubles the value, as for SO_SNDBUF.</summary>
    public const int SO_SNDBUFFORCE = 32;
    /// <summary>SO_RCVBUF past net.core.rmem_max (CAP_NET_ADMIN); the kernel doubles the value.</summary>
    public const int SO_RCVBUFFORCE = 33;

    public const int MSG_PEEK = 0x2;
    public const int MSG_DONTWAIT = 0x40;
    public const int MSG_TRUNC = 0x20;
    public const int MSG_NOSIGNAL = 0x4000;
    public const int MSG_MORE = 0x8000;

    public const int SHUT_WR = 1;

    /// <summary>struct timeval, as SO_RCVTIMEO takes it (64-bit: two longs).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct TimeVal
    {
        public long Seconds;
        public long Microseconds;
    }

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    public static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "accept4", SetLastError = true)]
    public static partial int Accept4(int fd, byte* address, int* length, int flags);

    [LibraryImport("libc", EntryPoint = "connect", SetLastError = true)]
    public static partial int Connect(int fd, byte* address, int length);

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    public static partial int Bind(int fd, void* address, uint addressLength);

    [LibraryImport("libc", EntryPoint = "sendto", SetLastError = true)]
    public static partial nint SendTo(int fd, void* buffer, nint length, int flags, void* address, uint addressLength);

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    public static partial nint Send(int fd, void* buffer, nint length, int flags);

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    public static partial nint Recv(int fd, void* buffer, nint length, int flags);

    [LibraryImport("libc", EntryPoint = "shutdown", SetLastError = true)]
    public static partial int Shutdown(int fd, int how);

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    public static partial int SetSockOpt(int fd, int level, int name, void* value, uint valueLength);

    [LibraryImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    public static partial int GetSockOpt(int fd, int level, int name, void* value, uint* valueLength);

    [LibraryImport("libc", EntryPoint = "getsockname", SetLastError = true)]
    public static partial int GetSockName(int fd, byte* address, uint* addressLength);

    [LibraryImport("libc", EntryPoint = "getpeername", SetLastError = true)]
    public static partial int GetPeerName(int fd, byte* address, uint* addressLength);
}
