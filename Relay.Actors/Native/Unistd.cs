using System.Runtime.InteropServices;

namespace Relay.Actors.Native;

/// <summary>INTERNAL API. &lt;unistd.h&gt;.</summary>
internal static partial class Unistd
{
    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);
}

/// <summary>
/// INTERNAL API. A descriptor the relay opened itself (netlink, packet sockets), closed
/// exactly once, by <see cref="SafeHandle.Dispose()"/> or by the finalizer if it was dropped.
/// </summary>
internal sealed class FileDescriptor : SafeHandle
{
    public FileDescriptor(int fd)
        : base(new IntPtr(-1), ownsHandle: true) => SetHandle(new IntPtr(fd));

    public override bool IsInvalid => handle.ToInt64() < 0;

    /// <summary>The descriptor number; valid only while a reference is held (see <see cref="SafeHandle.DangerousAddRef"/>).</summary>
    public int Fd => (int)handle.ToInt64();

    protected override bool ReleaseHandle() => Unistd.Close(Fd) == 0;
}
