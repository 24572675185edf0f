using System.Runtime.InteropServices;

namespace Relay.Actors.Native;

/// <summary>
/// INTERNAL API. &lt;sys/epoll.h&gt;: the calls of the core event loop. Errors come back as -1
/// with errno in <see cref="Marshal.GetLastPInvokeError"/>.
/// </summary>
internal static unsafe partial class Epoll
{
    public const int EPOLL_CTL_ADD = 1;
    public const int EPOLL_CTL_DEL = 2;
    public const int EPOLL_CLOEXEC = 0x80000;

    public const uint EPOLLIN = 0x001;
    public const uint EPOLLOUT = 0x004;
    public const uint EPOLLERR = 0x008;
    public const uint EPOLLHUP = 0x010;
    public const uint EPOLLRDHUP = 0x2000;
    public const uint EPOLLEXCLUSIVE = 1u << 28;
    public const uint EPOLLET = 0x80000000;

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
}
