using System.Net.Sockets;
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
    public const int EBADF = 9;
    public const int EAGAIN = 11;
    public const int EACCES = 13;
    public const int EEXIST = 17;
    public const int ENODEV = 19;
    public const int EINVAL = 22;
    public const int ENFILE = 23;
    public const int EMFILE = 24;
    public const int EPIPE = 32;
    public const int EPROTONOSUPPORT = 93;
    public const int EOPNOTSUPP = 95;
    public const int EAFNOSUPPORT = 97;
    public const int EADDRNOTAVAIL = 99;
    public const int ENETDOWN = 100;
    public const int ENETUNREACH = 101;
    public const int ECONNABORTED = 103;
    public const int ECONNRESET = 104;
    public const int ENOTCONN = 107;
    public const int ETIMEDOUT = 110;
    public const int ECONNREFUSED = 111;
    public const int EHOSTDOWN = 112;
    public const int EHOSTUNREACH = 113;
    public const int EINPROGRESS = 115;

    /// <summary>strerror(3) of <paramref name="errno"/>, e.g. "Operation not permitted".</summary>
    public static string Describe(int errno) => Marshal.GetPInvokeErrorMessage(errno);

    /// <summary>True for the errors a missing capability causes.</summary>
    public static bool IsPermission(int errno) => errno is EPERM or EACCES;

    /// <summary>The errno values a connect, accept, send or recv can end with, as .NET names them.</summary>
    public static SocketError ToSocketError(int errno) => errno switch
    {
        0 => SocketError.Success,
        ECONNREFUSED => SocketError.ConnectionRefused,
        EHOSTUNREACH => SocketError.HostUnreachable,
        ENETUNREACH => SocketError.NetworkUnreachable,
        ETIMEDOUT => SocketError.TimedOut,
        ECONNRESET => SocketError.ConnectionReset,
        ECONNABORTED => SocketError.ConnectionAborted,
        EPIPE => SocketError.Shutdown,                  // as .NET maps it
        ENOTCONN => SocketError.NotConnected,
        EBADF => SocketError.OperationAborted,          // closed under the caller
        EADDRNOTAVAIL => SocketError.AddressNotAvailable,
        ENETDOWN => SocketError.NetworkDown,
        EHOSTDOWN => SocketError.HostDown,
        EACCES or EPERM => SocketError.AccessDenied,    // a firewall rule
        EMFILE or ENFILE => SocketError.TooManyOpenSockets,
        _ => SocketError.SocketError,
    };
}

/// <summary>INTERNAL API. A system call that failed: which one, and errno.</summary>
internal sealed class NativeCallException(string call, int errno)
    : Exception($"{call}: {Native.Errno.Describe(errno)}")
{
    public string Call { get; } = call;

    public int Errno { get; } = errno;
}
