using System.Net.Sockets;
using System.Runtime.InteropServices;
using Relay.Actors.Native;

namespace Relay.Actors.Sockets;

/// <summary>
/// INTERNAL API. A pipe through which one direction of a circuit moves its bytes with
/// splice(2), socket to pipe to socket, so they never enter user space: the kernel moves
/// references to the received pages instead of copying them out and back in. The two copies
/// are a third of the relay's CPU in a bulk transfer (perf on loopback: <c>_copy_to_iter</c>
/// 18%, <c>_copy_from_iter</c> 13%, <c>__check_object_size</c> 3%).
/// <para>
/// Both ends are non-blocking; results follow <see cref="RawSocket"/>'s conventions (bytes, 0
/// at EOF, <see cref="SocketError.WouldBlock"/> for EAGAIN). Like the circuit's sockets, a
/// pipe is used and closed on its circuit's core thread only.
/// </para>
/// </summary>
internal sealed unsafe class SplicePipe : IDisposable
{
    private const uint Flags = Fcntl.SPLICE_F_MOVE | Fcntl.SPLICE_F_NONBLOCK;
    private readonly FileDescriptor _read;
    private readonly FileDescriptor _write;

    private SplicePipe(int readFd, int writeFd, int capacity)
    {
        _read = new FileDescriptor(readFd);
        _write = new FileDescriptor(writeFd);
        Capacity = capacity;
    }

    /// <summary>The most bytes the pipe holds: its size.</summary>
    public int Capacity { get; }

    // The state of the lane that splices through this pipe, kept here rather than in the lane,
    // so a lane that never splices does not carry it (see SocketReader.Lane).

    /// <summary>Bytes in the pipe, not yet moved to the destination.</summary>
    public int Held { get; set; }

    /// <summary>The destination was full: the lane waits for its room.</summary>
    public bool WaitingForRoom { get; set; }

    /// <summary>While the circuit is frozen: the bytes <see cref="Take"/> took out.</summary>
    public byte[]? Taken { get; set; }

    /// <summary>
    /// A pipe of about <paramref name="size"/> bytes (the kernel may give less: its
    /// pipe-max-size, or the user's pipe quota), or null when none can be made (descriptors
    /// exhausted, say): the direction then goes on copying, so the reason is not kept.
    /// </summary>
    public static SplicePipe? TryCreate(int size)
    {
        var fds = stackalloc int[2];
        if (Unistd.Pipe2(fds, Fcntl.O_NONBLOCK | Fcntl.O_CLOEXEC) != 0)
        {
            return null;
        }

        // Refused above pipe-max-size for an unprivileged process: the default size then.
        var capacity = Fcntl.Control(fds[1], Fcntl.F_SETPIPE_SZ, size);
        if (capacity <= 0)
        {
            capacity = Fcntl.Control(fds[1], Fcntl.F_GETPIPE_SZ, 0);
        }

        return new SplicePipe(fds[0], fds[1], Math.Max(capacity, 4096));
    }

    /// <summary>Moves up to <paramref name="count"/> bytes from <paramref name="source"/> into the pipe.</summary>
    public int FillFrom(SafeSocketHandle source, int count, out SocketError error) => Splice(source, toPipe: true, count, out error);

    /// <summary>Moves up to <paramref name="count"/> bytes from the pipe to <paramref name="destination"/>.</summary>
    public int DrainTo(SafeSocketHandle destination, int count, out SocketError error) => Splice(destination, toPipe: false, count, out error);

    /// <summary>
    /// Takes <paramref name="count"/> bytes out of the pipe into user space (a freeze reports
    /// what each direction still owes; the pipe cannot be read without being emptied).
    /// </summary>
    public byte[] Take(int count)
    {
        var bytes = new byte[count];
        var fd = _read.Fd;
        fixed (byte* p = bytes)
        {
            for (var at = 0; at < count;)
            {
                var read = Unistd.Read(fd, p + at, count - at);
                if (read > 0)
                {
                    at += (int)read;
                }
                else if (read < 0 && Marshal.GetLastPInvokeError() == Errno.EINTR)
                {
                    continue;
                }
                else
                {
                    throw new InvalidOperationException(
                        $"the splice pipe gave {at} of the {count} bytes it holds ({(read == 0 ? "EOF" : Errno.Describe(Marshal.GetLastPInvokeError()))})");
                }
            }
        }

        return bytes;
    }

    private int Splice(SafeSocketHandle socket, bool toPipe, int count, out SocketError error)
    {
        if (socket.IsClosed)
        {
            // The supervisor closed it (the circuit is ending): see RawSocket.IsClosed.
            error = SocketError.OperationAborted;
            return 0;
        }

        var fd = (int)socket.DangerousGetHandle();
        while (true)
        {
            var moved = toPipe
                ? Fcntl.Splice(fd, 0, _write.Fd, 0, count, Flags)
                : Fcntl.Splice(_read.Fd, 0, fd, 0, count, Flags);
            if (moved >= 0)
            {
                error = SocketError.Success;
                return (int)moved;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno != Errno.EINTR)
            {
                error = errno == Errno.EAGAIN ? SocketError.WouldBlock : Errno.ToSocketError(errno);
                return 0;
            }
        }
    }

    public void Dispose()
    {
        _read.Dispose();
        _write.Dispose();
    }
}
