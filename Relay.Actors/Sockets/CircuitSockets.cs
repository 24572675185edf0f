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
/// The circuit's I/O goes through <see cref="RawSocket"/> on the raw descriptor, never through
/// <see cref="Socket.Receive(byte[])"/>: the Socket object is the owner of the descriptor
/// (close, options, TCP_INFO for the management API) and nothing more.
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

    /// <summary>Bytes of a <c>struct sockaddr_storage</c> large enough for both families (sockaddr_in6).</summary>
    public const int AddressBytes = 28;

    /// <summary>
    /// Writes <paramref name="endpoint"/> as the <c>struct sockaddr_in</c> or <c>sockaddr_in6</c>
    /// that bind, connect and sendto take, into <paramref name="address"/> (at least
    /// <see cref="AddressBytes"/>); returns its length. The inverse of <see cref="ParseAddress"/>.
    /// </summary>
    public static int WriteAddress(IPEndPoint endpoint, Span<byte> address)
    {
        address[..AddressBytes].Clear();
        address[2] = (byte)(endpoint.Port >> 8); // network order
        address[3] = (byte)endpoint.Port;
        if (endpoint.AddressFamily == AddressFamily.InterNetwork)
        {
            // struct sockaddr_in: family, port, address, zero padding
            MemoryMarshal.Write(address, (ushort)SysSocket.AF_INET);
            endpoint.Address.TryWriteBytes(address[4..8], out _);
            return 16;
        }

        // struct sockaddr_in6: family, port, flow info, address, scope id
        MemoryMarshal.Write(address, (ushort)SysSocket.AF_INET6);
        endpoint.Address.TryWriteBytes(address[8..24], out _);
        MemoryMarshal.Write(address[24..], (uint)endpoint.Address.ScopeId);
        return 28;
    }

    [UnsafeAccessor(UnsafeAccessorKind.Constructor)]
    private static extern Socket NewSocket(SafeSocketHandle handle, bool loadPropertiesFromHandle);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_addressFamily")]
    private static extern ref AddressFamily AddressFamilyOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_socketType")]
    private static extern ref SocketType SocketTypeOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_protocolType")]
    private static extern ref ProtocolType ProtocolTypeOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_rightEndPoint")]
    private static extern ref EndPoint? RightEndPointOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_remoteEndPoint")]
    private static extern ref EndPoint? RemoteEndPointOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_isConnected")]
    private static extern ref bool IsConnectedOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_willBlock")]
    private static extern ref bool WillBlockOf(Socket socket);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_willBlockInternal")]
    private static extern ref bool WillBlockInternalOf(Socket socket);

}
