using System.Runtime.InteropServices;

namespace Relay.Actors.Native;

/// <summary>
/// INTERNAL API. &lt;sys/eventfd.h&gt;: the descriptor another thread writes to wake a core
/// event loop out of epoll_wait. Errors come back as -1 with errno in
/// <see cref="Marshal.GetLastPInvokeError"/>.
/// </summary>
internal static partial class EventFd
{
    public const int EFD_NONBLOCK = 0x800;
    public const int EFD_CLOEXEC = 0x80000;

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    public static partial int Create(uint initval, int flags);
}
