using System.Runtime.InteropServices;

namespace Relay.Tests.Native;

/// <summary>
/// &lt;linux/capability.h&gt;: capability numbers, and capget/capset on the calling thread
/// (glibc exports both). Errors come back as -1 with errno in <see cref="Marshal.GetLastPInvokeError"/>.
/// </summary>
internal static unsafe partial class Capability
{
    public const int CAP_NET_BIND_SERVICE = 10;
    public const int CAP_NET_BROADCAST = 11;
    public const int CAP_NET_ADMIN = 12;
    public const int CAP_NET_RAW = 13;
    public const int CAP_SYS_ADMIN = 21;
    public const int CAP_SYS_RESOURCE = 24;

    /// <summary>The header version whose data is two {effective, permitted, inheritable} triples: capabilities 0-31, then 32-63.</summary>
    public const uint LINUX_CAPABILITY_VERSION_3 = 0x20080522;

    /// <param name="header">{version, pid}; pid 0 is the calling thread.</param>
    /// <param name="data">Two {effective, permitted, inheritable} triples.</param>
    [LibraryImport("libc", EntryPoint = "capget", SetLastError = true)]
    public static partial int Capget(uint* header, uint* data);

    /// <param name="header">{version, pid}; pid 0 is the calling thread.</param>
    /// <param name="data">Two {effective, permitted, inheritable} triples.</param>
    [LibraryImport("libc", EntryPoint = "capset", SetLastError = true)]
    public static partial int Capset(uint* header, uint* data);
}
