using System.Runtime.InteropServices;

namespace Relay.Actors.Native;

/// <summary>
/// INTERNAL API. &lt;errno.h&gt;: the Linux error numbers the native callers tell apart
/// (the same on x86-64 and arm64), and errno as text for a log line.
/// </summary>
internal static class Errno
{
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int EINTR = 4;
    public const int EAGAIN = 11;
    public const int EACCES = 13;
    public const int EEXIST = 17;
    public const int ENODEV = 19;
    public const int EINVAL = 22;
    public const int EADDRNOTAVAIL = 99;

    /// <summary>strerror(3) of <paramref name="errno"/>, e.g. "Operation not permitted".</summary>
    public static string Describe(int errno) => Marshal.GetPInvokeErrorMessage(errno);

    /// <summary>True for the errors a missing capability causes.</summary>
    public static bool IsPermission(int errno) => errno is EPERM or EACCES;
}

/// <summary>INTERNAL API. A system call that failed: which one, and errno.</summary>
internal sealed class NativeCallException(string call, int errno)
    : Exception($"{call}: {Native.Errno.Describe(errno)}")
{
    public string Call { get; } = call;

    public int Errno { get; } = errno;
}
