using System.Net;
using System.Runtime.InteropServices;

namespace Relay.Actors.Native;

/// <summary>
/// INTERNAL API. An AF_PACKET datagram socket that sends link-layer frames (gratuitous ARP,
/// unsolicited neighbour advertisements) out of a given interface; the kernel adds the
/// Ethernet header with the interface's own address as source. Opened once and held, as
/// keepalived holds its: opening needs CAP_NET_RAW, and a failover should not be the first
/// time that is found missing. Protocol 0, so it receives nothing and queues nothing.
/// Thread-safe: each send is one system call.
/// </summary>
internal sealed unsafe class LinkLayerSocket : IDisposable
{
    private readonly FileDescriptor _fd;

    private LinkLayerSocket(FileDescriptor fd) => _fd = fd;

    /// <summary>Opens the socket; throws <see cref="NativeCallException"/> (EPERM without CAP_NET_RAW).</summary>
    public static LinkLayerSocket Open()
    {
        var fd = SysSocket.Socket(SysSocket.AF_PACKET, SysSocket.SOCK_DGRAM | SysSocket.SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            throw new NativeCallException("socket(AF_PACKET)", Marshal.GetLastPInvokeError());
        }

        return new LinkLayerSocket(new FileDescriptor(fd));
    }

    /// <summary>
    /// Sends <paramref name="payload"/> as one frame of <paramref name="etherType"/> to
    /// <paramref name="destination"/> (a MAC) out of interface <paramref name="ifIndex"/>: 0, or errno.
    /// </summary>
    public int Send(int ifIndex, ushort etherType, ReadOnlySpan<byte> destination, ReadOnlySpan<byte> payload)
    {
        var address = new PacketSocket.SockAddrLl
        {
            Family = SysSocket.AF_PACKET,
            Protocol = (ushort)IPAddress.HostToNetworkOrder((short)etherType),
            IfIndex = ifIndex,
            HaLength = (byte)destination.Length,
        };
        destination[..Math.Min(destination.Length, 8)].CopyTo(new Span<byte>(address.Address, 8));
        return _fd.SendTo(payload, &address, (uint)sizeof(PacketSocket.SockAddrLl));
    }

    public void Dispose() => _fd.Dispose();
}
