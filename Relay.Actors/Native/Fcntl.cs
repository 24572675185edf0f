using System.Runtime.InteropServices;

namespace Relay.Actors.Native;

/// <summary>
/// INTERNAL API. &lt;fcntl.h&gt;. Errors come back as -1 with errno in
/// <see cref="Marshal.GetLastPInvokeError"/>.
/// </summary>
internal static partial class Fcntl
{
    public const int O_RDONLY = 0;
    public const int O_CLOEXEC = 0x80000;

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Open(string path, int flags);
}
