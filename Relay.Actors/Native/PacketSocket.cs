using System.Runtime.InteropServices;

namespace Relay.Actors.Native;

/// <summary>
/// INTERNAL API. &lt;linux/if_packet.h&gt; and &lt;linux/if_ether.h&gt;: link-layer frames
/// sent on one interface (AF_PACKET). With SOCK_DGRAM the kernel writes the Ethernet header
/// from <see cref="SockAddrLl"/>: the interface's own address as source.
/// </summary>
internal static class PacketSocket
{
    public const ushort ETH_P_IP = 0x0800;
    public const ushort ETH_P_ARP = 0x0806;
    public const ushort ETH_P_IPV6 = 0x86DD;
    public const int ETH_ALEN = 6;

    /// <summary>struct sockaddr_ll; <see cref="Protocol"/> is in network byte order.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct SockAddrLl
    {
        public ushort Family;
        public ushort Protocol;
        public int IfIndex;
        public ushort HaType;
        public byte PacketType;
        public byte HaLength;
        public fixed byte Address[8];
    }
}
