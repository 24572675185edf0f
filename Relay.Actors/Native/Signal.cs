using System.Runtime.InteropServices;

namespace Relay.Actors.Native;

/// <summary>
/// INTERNAL API. &lt;signal.h&gt;. Errors come back as -1 with errno in
/// <see cref="Marshal.GetLastPInvokeError"/>.
/// </summary>
internal static unsafe partial class Signal
{
    public const int SIGHUP = 1;

    public const nint SIG_IGN = 1;

    /// <summary>
    /// Room for struct sigaction on every Linux libc (glibc's is 152 bytes on x86-64 and
    /// arm64); its first member is the handler on all of them, and all zero is SIG_DFL with
    /// an empty mask and no flags.
    /// </summary>
    public const int SigactionBytes = 256;

    [LibraryImport("libc", EntryPoint = "sigaction", SetLastError = true)]
    public static partial int Sigaction(int signal, byte* action, byte* previous);
}
