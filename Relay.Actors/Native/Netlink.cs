using System.Runtime.InteropServices;

namespace Relay.Actors.Native;

/// <summary>
/// INTERNAL API. &lt;linux/netlink.h&gt;, &lt;linux/rtnetlink.h&gt;, &lt;linux/if_addr.h&gt; and
/// &lt;linux/if_link.h&gt;: the rtnetlink messages that read a link and add or delete an
/// address. Netlink is in host byte order; every header and attribute is 4-byte aligned.
/// </summary>
internal static class Netlink
{
    public const int NETLINK_ROUTE = 0;
    public const int SOL_NETLINK = 270;
    /// <summary>Echo only the request's header in an error, not the whole request.</summary>
    public const int NETLINK_CAP_ACK = 10;
    /// <summary>Errors carry the kernel's own explanation (NLMSGERR_ATTR_MSG).</summary>
    public const int NETLINK_EXT_ACK = 11;

    // nlmsghdr.nlmsg_type
    public const ushort NLMSG_ERROR = 2;
    public const ushort NLMSG_DONE = 3;
    public const ushort RTM_NEWLINK = 16;
    public const ushort RTM_GETLINK = 18;
    public const ushort RTM_NEWADDR = 20;
    public const ushort RTM_DELADDR = 21;

    // nlmsghdr.nlmsg_flags
    public const ushort NLM_F_REQUEST = 0x1;
    public const ushort NLM_F_ACK = 0x4;
    public const ushort NLM_F_REPLACE = 0x100;
    public const ushort NLM_F_CREATE = 0x400;
    /// <summary>In an NLMSG_ERROR: extended-ack attributes follow the echoed header.</summary>
    public const ushort NLM_F_ACK_TLVS = 0x200;

    // struct nlmsgerr's attributes
    public const ushort NLMSGERR_ATTR_MSG = 1;

    // ifaddrmsg attributes and flags
    public const ushort IFA_ADDRESS = 1;
    public const ushort IFA_LOCAL = 2;
    /// <summary>No duplicate address detection: an IPv6 address is usable at once, not tentative for a second.</summary>
    public const byte IFA_F_NODAD = 0x02;

    // ifinfomsg attributes
    public const ushort IFLA_ADDRESS = 1;
    public const ushort IFLA_IFNAME = 3;
    public const ushort IFLA_EXT_MASK = 29;
    /// <summary>Leave the link's statistics out of the answer: only its index and address are read.</summary>
    public const uint RTEXT_FILTER_SKIP_STATS = 1 << 3;

    public const int HeaderSize = 16;
    public const int ErrorSize = 4 + HeaderSize;
    public const int AttributeHeaderSize = 4;

    /// <summary>NLMSG_ALIGN / RTA_ALIGN.</summary>
    public static int Align(int length) => (length + 3) & ~3;

    /// <summary>struct nlmsghdr.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct MessageHeader
    {
        public uint Length;
        public ushort Type;
        public ushort Flags;
        public uint Sequence;
        public uint PortId;
    }

    /// <summary>struct ifaddrmsg.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct IfAddrMsg
    {
        public byte Family;
        public byte PrefixLength;
        public byte Flags;
        public byte Scope;
        public int Index;
    }

    /// <summary>struct ifinfomsg.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct IfInfoMsg
    {
        public byte Family;
        public byte Pad;
        public ushort Type;
        public int Index;
        public uint Flags;
        public uint Change;
    }

    /// <summary>struct rtattr (and struct nlattr, the same layout).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Attribute
    {
        public ushort Length;
        public ushort Type;
    }

    /// <summary>struct sockaddr_nl.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct SockAddr
    {
        public ushort Family;
        public ushort Pad;
        public uint PortId;
        public uint Groups;
    }
}
