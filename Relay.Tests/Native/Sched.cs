using System.Runtime.InteropServices;

namespace Relay.Tests.Native;

/// <summary>
/// &lt;sched.h&gt; as the tests use it: joining a network namespace. The relay's own calls
/// into this header (CPU affinity) are in <see cref="Relay.Actors.Native.Sched"/>. Errors come
/// back as -1 with errno in <see cref="Marshal.GetLastPInvokeError"/>.
/// </summary>
internal static partial class Sched
{
    public const int CLONE_NEWNET = 0x40000000;

    /// <summary>Moves the calling thread (a Linux task), not the whole process, into the namespace <paramref name="fd"/> refers to.</summary>
    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    public static partial int Setns(int fd, int nstype);
}
