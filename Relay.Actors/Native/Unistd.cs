using System.Runtime.InteropServices;

namespace Relay.Actors.Native;

/// <summary>
/// INTERNAL API. &lt;unistd.h&gt; (and the one syscall number of &lt;sys/syscall.h&gt; the
/// relay uses). Errors come back as -1 with errno in <see cref="Marshal.GetLastPInvokeError"/>.
/// </summary>
internal static unsafe partial class Unistd
{
    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    /// <summary>pipe2(2): <paramref name="fds"/>[0] the read end, [1] the write end.</summary>
    [LibraryImport("libc", EntryPoint = "pipe2", SetLastError = true)]
    public static partial int Pipe2(int* fds, int flags);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, byte* buffer, nint count);

    /// <summary>Returns only if it failed; <paramref name="argv"/> and <paramref name="envp"/> end with null.</summary>
    [LibraryImport("libc", EntryPoint = "execve", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Execve(string path, string?[] argv, string?[] envp);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    public static partial long Syscall(long number);

    /// <summary>__NR_gettid from the kernel's syscall tables; it differs per architecture.</summary>
    public static long? GettidSyscallNumber => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 186,
        Architecture.Arm64 => 178,
        _ => null,
    };
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

    /// <summary>
    /// sendto(2) of <paramref name="payload"/> as one datagram to the socket address at
    /// <paramref name="address"/>, again after EINTR, with a reference held on the descriptor
    /// for the call: 0, or errno.
    /// </summary>
    public unsafe int SendTo(ReadOnlySpan<byte> payload, void* address, uint addressLength)
    {
        var added = false;
        DangerousAddRef(ref added);
        try
        {
            fixed (byte* p = payload)
            {
                while (SysSocket.SendTo(Fd, p, payload.Length, 0, address, addressLength) < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno != Errno.EINTR)
                    {
                        return errno;
                    }
                }
            }

            return 0;
        }
        finally
        {
            if (added)
            {
                DangerousRelease();
            }
        }
    }

    protected override bool ReleaseHandle() => Unistd.Close(Fd) == 0;
}
