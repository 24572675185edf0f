using System.Runtime.InteropServices;

namespace Relay.Actors.Native;

/// <summary>
/// INTERNAL API. &lt;sys/ioctl.h&gt; with the socket requests of linux/sockios.h (asm-generic
/// values, the same on x86-64 and arm64). Errors come back as -1 with errno in
/// <see cref="Marshal.GetLastPInvokeError"/>.
/// </summary>
internal static unsafe partial class Ioctl
{
    /// <summary>TCP: bytes in the receive queue not yet read (FIONREAD); a received FIN is not counted.</summary>
    public const uint SIOCINQ = 0x541B;
    /// <summary>TCP: bytes in the send queue not yet acknowledged, sent or not (TIOCOUTQ).</summary>
    public const uint SIOCOUTQ = 0x5411;
    /// <summary>TCP: bytes in the send queue not yet sent.</summary>
    public const uint SIOCOUTQNSD = 0x894B;

    /// <summary>ioctl(2) with an int out-argument.</summary>
    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Call(int fd, nuint request, int* value);
}
