using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Relay.Actors.Native;

namespace Relay.Actors.Sockets;

/// <summary>
/// INTERNAL API. Makes the <see cref="Socket"/> objects of a circuit from descriptors the
/// relay opened itself (accept4, socket with SOCK_NONBLOCK), without the system calls .NET
/// spends to learn what the relay already knows.
/// <para>
/// The public <c>Socket(SafeSocketHandle)</c> constructor asks the kernel for everything:
/// fstat, four getsockopt (domain, type, protocol, listening), fcntl, getsockname and
/// getpeername, nine calls per accepted connection (strace -f on the relay under
/// <c>Connection: close</c> load), and making a socket non-blocking through
/// <see cref="Socket.Blocking"/> costs two fcntl more. .NET's own accept path skips all that
/// with a private constructor and fills the fields from the accept's address; this does the
/// same through <see cref="UnsafeAccessorAttribute"/> (no reflection cost), and falls back to
/// the public constructor for good if a runtime ever lacks those members.
/// </para>
/// <para>
/// A circuit keeps its sockets' <see cref="SafeSocketHandle"/>s alone, not the Socket objects
/// (<see cref="Detach"/>): its I/O goes through <see cref="RawSocket"/> on the descriptor, and
/// the handle is what closes it, once, and what keeps a descriptor number from being reused
/// while another thread reads its options. The Socket (112 B a socket, 224 B an idle circuit,
/// ops/bench/idle-heap.md) is needed only for its setup (options, bind, transparent lookups),
/// made by the accept or the connect and dropped after it, and now and then later: management's
/// TCP_INFO, the upstream's keepalive, a handover. Those get a <see cref="View"/>, a Socket
/// made around the handle on the spot that never closes it by being collected.
/// </para>
/// </summary>
internal static unsafe class CircuitSockets
{
    private static volatile bool s_fastPathBroken;

    /// <summary>Whether sockets are wrapped without the constructor's queries (false after a runtime lacked the private members).</summary>
    internal static bool FastPath => !s_fastPathBroken;

    /// <summary>
    /// Wraps a connected, non-blocking descriptor (from accept4 or a raw connect) whose peer
    /// is <paramref name="remote"/>. The socket owns the descriptor from now on.
    /// </summary>
    public static Socket WrapConnected(int fd, IPEndPoint remote)
    {
        var handle = new SafeSocketHandle(fd, ownsHandle: true);
        if (!s_fastPathBroken)
        {
            try
            {
                var socket = NewSocket(handle, loadPropertiesFromHandle: false);
                AddressFamilyOf(socket) = remote.AddressFamily;
                SocketTypeOf(socket) = SocketType.Stream;
                ProtocolTypeOf(socket) = ProtocolType.Tcp;
                // What Socket.Accept records for an accepted socket: RemoteEndPoint answers
                // from memory, LocalEndPoint asks getsockname only when someone wants it.
                RightEndPointOf(socket) = remote;
                RemoteEndPointOf(socket) = remote;
                IsConnectedOf(socket) = true;
                // The descriptor is O_NONBLOCK already: Blocking reads false, so setting it
                // (CoreEventLoop.Register does) costs nothing.
                WillBlockOf(socket) = false;
                WillBlockInternalOf(socket) = false;
                return socket;
            }
            catch (Exception e) when (e is MissingMemberException or MissingMethodException or MissingFieldException)
            {
                s_fastPathBroken = true;
            }
        }

        var fallback = new Socket(handle);
        fallback.Blocking = false;
        return fallback;
    }

    /// <summary>
    /// What a circuit keeps of a socket it has set up: its handle, which owns the descriptor.
    /// The Socket object is let go; its finalizer would close the handle with it, so it is
    /// suppressed, and a socket dropped without a close is closed by the handle's own finalizer.
    /// </summary>
    public static SafeSocketHandle Detach(Socket socket)
    {
        GC.SuppressFinalize(socket);
        return socket.SafeHandle;
    }

    /// <summary>
    /// A Socket over a circuit's descriptor, for the options and TCP_INFO that only a Socket
    /// reads and writes, made without a system call. It knows no address (family, endpoints):
    /// use <see cref="ConnectedView"/> where something asks for one. It is never finalized, so
    /// dropping it leaves the descriptor to the circuit; disposing it closes the descriptor.
    /// Safe on any thread: a handle the circuit has closed makes its calls throw
    /// <see cref="ObjectDisposedException"/>, never reach a reused descriptor number.
    /// </summary>
    public static Socket View(SafeSocketHandle handle)
    {
        if (!s_fastPathBroken)
        {
            try
            {
                var socket = NewSocket(handle, loadPropertiesFromHandle: false);
                GC.SuppressFinalize(socket);
                SocketTypeOf(socket) = SocketType.Stream;
                ProtocolTypeOf(socket) = ProtocolType.Tcp;
                return socket;
            }
            catch (Exception e) when (e is MissingMemberException or MissingMethodException or MissingFieldException)
            {
                s_fastPathBroken = true;
            }
        }

        var fallback = new Socket(handle);
        GC.SuppressFinalize(fallback);
        return fallback;
    }

    /// <summary>
    /// As <see cref="View"/>, with its addresses: its local one read now (getsockname, which
    /// works on a connection already reset too), its peer's when first asked (getpeername). For
    /// a handover's repair and the TCP tuple it guards, and the PROXY header's destination.
    /// </summary>
    /// <exception cref="SocketException">getsockname failed.</exception>
    /// <exception cref="ObjectDisposedException">The circuit has closed the socket.</exception>
    public static Socket ConnectedView(SafeSocketHandle handle)
    {
        var local = LocalOf(handle);
        var socket = View(handle);
        if (s_fastPathBroken)
        {
            return socket; // the public constructor read the addresses from the kernel
        }

        try
        {
            // As for an accepted socket, the remote end point is left for getpeername to fill;
            // the right end point only gives its family to the addresses the kernel returns.
            AddressFamilyOf(socket) = local.AddressFamily;
            RightEndPointOf(socket) = local;
            LocalEndPointOf(socket) = local;
            IsConnectedOf(socket) = true;
            return socket;
        }
        catch (Exception e) when (e is MissingMemberException or MissingMethodException or MissingFieldException)
        {
            s_fastPathBroken = true;
            return View(handle);
        }
    }

    private static IPEndPoint LocalOf(SafeSocketHandle handle)
    {
        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            Span<byte> address = stackalloc byte[MaxAddressLength];
            var length = (uint)MaxAddressLength;
            fixed (byte* p = address)
            {
                if (SysSocket.GetSockName((int)handle.DangerousGetHandle(), p, &length) != 0)
                {
                    throw new SocketException((int)Errno.ToSocketError(Marshal.GetLastPInvokeError()));
                }
            }

            return ParseAddress(address[..(int)Math.Min(length, (uint)MaxAddressLength)])
                   ?? throw new SocketException((int)SocketError.AddressFamilyNotSupported);
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// Closes a circuit's descriptor with one close(2), as <see cref="Close(Socket)"/> does for a
    /// Socket; <paramref name="reset"/> sets SO_LINGER 0 first, so the peer gets a reset.
    /// Closing the handle itself (its Dispose) would always reset: that is its finalizer's way.
    /// </summary>
    public static void Close(SafeSocketHandle handle, bool reset)
    {
        if (!s_fastPathBroken)
        {
            try
            {
                CloseAsIs(handle, abortive: reset);
                return;
            }
            catch (Exception e) when (e is MissingMemberException or MissingMethodException)
            {
                s_fastPathBroken = true;
            }
        }

        var view = View(handle);
        if (reset)
        {
            try
            {
                view.LingerState = new LingerOption(true, 0);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // Already gone: closing is all that is left.
            }
        }

        view.Dispose();
    }

    /// <summary>
    /// Closes a circuit socket with one close(2). Socket.Dispose of a socket in non-blocking
    /// mode first "returns it to blocking mode" with two fcntl, which a descriptor about to be
    /// closed does not need; marked blocking again, Dispose goes straight to close. The
    /// descriptor's O_NONBLOCK is untouched, so close never waits (SO_LINGER 0 resets at once).
    /// </summary>
    public static void Close(Socket socket)
    {
        if (!s_fastPathBroken)
        {
            try
            {
                WillBlockOf(socket) = true;
                WillBlockInternalOf(socket) = true;
            }
            catch (Exception e) when (e is MissingMemberException or MissingMethodException or MissingFieldException)
            {
                s_fastPathBroken = true;
            }
        }

        socket.Dispose();
    }

    /// <summary>
    /// socket(2) with SOCK_NONBLOCK | SOCK_CLOEXEC for a connection to
    /// <paramref name="remote"/>, wrapped; <see cref="Socket"/>'s constructor would need two
    /// more fcntl to make it non-blocking.
    /// </summary>
    /// <exception cref="SocketException">socket(2) failed (EMFILE and friends).</exception>
    public static Socket CreateForConnect(IPEndPoint remote)
    {
        var domain = remote.AddressFamily == AddressFamily.InterNetworkV6 ? SysSocket.AF_INET6 : SysSocket.AF_INET;
        var fd = SysSocket.Socket(domain, SysSocket.SOCK_STREAM | SysSocket.SOCK_NONBLOCK | SysSocket.SOCK_CLOEXEC, Inet.IPPROTO_TCP);
        if (fd < 0)
        {
            throw new SocketException((int)Errno.ToSocketError(Marshal.GetLastPInvokeError()));
        }

        return WrapConnected(fd, remote);
    }

    /// <summary>The size of a <c>struct sockaddr_in6</c>, the longer of the two the relay writes.</summary>
    public const int MaxAddressLength = 28;

    /// <summary>
    /// Writes <paramref name="endpoint"/> as a <c>struct sockaddr_in</c> (16 bytes) or
    /// <c>struct sockaddr_in6</c> (28 bytes) into <paramref name="address"/>, which holds at
    /// least <see cref="MaxAddressLength"/> bytes, for bind(2) or connect(2); returns its length.
    /// </summary>
    public static int WriteAddress(IPEndPoint endpoint, Span<byte> address)
    {
        address[..MaxAddressLength].Clear();
        if (endpoint.AddressFamily == AddressFamily.InterNetwork)
        {
            // struct sockaddr_in: family, port (network order), address, zero padding
            MemoryMarshal.Write(address, (ushort)SysSocket.AF_INET);
            address[2] = (byte)(endpoint.Port >> 8);
            address[3] = (byte)endpoint.Port;
            endpoint.Address.TryWriteBytes(address[4..8], out _);
            return 16;
        }

        // struct sockaddr_in6: family, port, flow info, address, scope id
        MemoryMarshal.Write(address, (ushort)SysSocket.AF_INET6);
        address[2] = (byte)(endpoint.Port >> 8);
        address[3] = (byte)endpoint.Port;
        endpoint.Address.TryWriteBytes(address[8..24], out _);
        MemoryMarshal.Write(address[24..], (uint)endpoint.Address.ScopeId);
        return MaxAddressLength;
    }

    /// <summary>The peer address accept4 wrote into a <c>struct sockaddr_storage</c>, or null for a family the relay does not carry.</summary>
    public static IPEndPoint? ParseAddress(ReadOnlySpan<byte> address)
    {
        if (address.Length < 2)
        {
            return null;
        }

        var family = MemoryMarshal.Read<ushort>(address);
        var port = (address[2] << 8) | address[3];
        if (family == SysSocket.AF_INET && address.Length >= 16)
        {
            return new IPEndPoint(new IPAddress(address.Slice(4, 4)), port);
        }

        if (family == SysSocket.AF_INET6 && address.Length >= 28)
        {
            var scope = MemoryMarshal.Read<uint>(address[24..]);
            return new IPEndPoint(new IPAddress(address.Slice(8, 16), scope), port);
        }

        return null;
    }

    [UnsafeAccessor(UnsafeAccessorKind.Constructor)]
    private static extern Socket NewSocket(SafeSocketHandle handle, bool loadPropertiesFromHandle);

    // What Socket.Dispose calls: close(2) (abortive: SO_LINGER 0, then close), once, after any
    // call another thread has in progress on the handle.
    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "CloseAsIs")]
    private static extern void CloseAsIs(SafeSocketHandle handle, bool abortive);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_addressFamily")]
    private static extern ref AddressFamily AddressFamilyOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_socketType")]
    private static extern ref SocketType SocketTypeOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_protocolType")]
    private static extern ref ProtocolType ProtocolTypeOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_rightEndPoint")]
    private static extern ref EndPoint? RightEndPointOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_localEndPoint")]
    private static extern ref EndPoint? LocalEndPointOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_remoteEndPoint")]
    private static extern ref EndPoint? RemoteEndPointOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_isConnected")]
    private static extern ref bool IsConnectedOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_willBlock")]
    private static extern ref bool WillBlockOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_willBlockInternal")]
    private static extern ref bool WillBlockInternalOf(Socket socket);

}
