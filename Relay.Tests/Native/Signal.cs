using System.Runtime.InteropServices;

namespace Relay.Tests.Native;

/// <summary>
/// &lt;signal.h&gt; as the tests use it: signals sent to a child relay. The relay's own
/// calls into this header (sigaction, SIGHUP) are in <see cref="Relay.Actors.Native.Signal"/>.
/// Errors come back as -1 with errno in <see cref="Marshal.GetLastPInvokeError"/>.
/// </summary>
internal static partial class Signal
{
    public const int SIGHUP = Relay.Actors.Native.Signal.SIGHUP;
    public const int SIGTERM = 15;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);
}
