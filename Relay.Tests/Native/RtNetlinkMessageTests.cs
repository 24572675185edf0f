using System.Net;
using System.Runtime.InteropServices;
using Relay.Actors.Native;

namespace Relay.Tests.Native;

/// <summary>
/// The rtnetlink messages byte for byte. The expected requests are what iproute2 (ip 6.x)
/// sent for the same commands, captured with strace; only the sequence number differs.
/// </summary>
public sealed class RtNetlinkMessageTests
{
    [Fact]
    public void An_ipv4_add_is_what_ip_addr_replace_sends()
    {
        var message = RtNetlink.BuildAddress(Netlink.RTM_NEWADDR, Netlink.NLM_F_CREATE | Netlink.NLM_F_REPLACE, 7, 3,
            IPAddress.Parse("198.18.0.10"), 24);

        // ip addr replace 198.18.0.10/24 dev d0 (ifindex 3)
        Assert.Equal(Header(40, 0x14, 0x505, 7) + "02180000" + "03000000" + "08000200c612000a" + "08000100c612000a",
            Convert.ToHexStringLower(message));
    }

    [Fact]
    public void An_ipv6_add_skips_duplicate_address_detection_as_ip_addr_replace_nodad_does()
    {
        var message = RtNetlink.BuildAddress(Netlink.RTM_NEWADDR, Netlink.NLM_F_CREATE | Netlink.NLM_F_REPLACE, 7, 3,
            IPAddress.Parse("2001:2::10"), 64);

        // ip addr replace 2001:2::10/64 dev d0 nodad: ifa_flags IFA_F_NODAD
        Assert.Equal(Header(64, 0x14, 0x505, 7) + "0a400200" + "03000000"
            + "14000200" + "20010002000000000000000000000010" + "14000100" + "20010002000000000000000000000010",
            Convert.ToHexStringLower(message));
    }

    [Fact]
    public void A_delete_is_what_ip_addr_del_sends()
    {
        var message = RtNetlink.BuildAddress(Netlink.RTM_DELADDR, 0, 7, 3, IPAddress.Parse("198.18.0.10"), 24);

        Assert.Equal(Header(40, 0x15, 0x005, 7) + "02180000" + "03000000" + "08000200c612000a" + "08000100c612000a",
            Convert.ToHexStringLower(message));
    }

    [Fact]
    public void A_link_is_asked_for_by_name_without_its_statistics()
    {
        var message = RtNetlink.BuildGetLink(9, "eth0");

        // ifinfomsg all zero, IFLA_EXT_MASK = RTEXT_FILTER_SKIP_STATS, IFLA_IFNAME = "eth0\0" padded to 4.
        Assert.Equal(Header(52, 0x12, 0x001, 9) + new string('0', 32) + "08001d0008000000" + "0900030065746830" + "00000000",
            Convert.ToHexStringLower(message));
    }

    [Fact]
    public void An_ack_is_success_and_an_error_carries_errno_and_the_kernels_explanation()
    {
        var ack = ErrorMessage(5, 0, capped: true, explanation: null);
        Assert.Equal(NetlinkResult.Success, RtNetlink.ParseAnswer(ack, 5, null, null));

        // As the kernel answered `ip addr del` of an absent IPv6 address: the whole request echoed, then the message.
        var uncapped = ErrorMessage(5, Errno.EADDRNOTAVAIL, capped: false, explanation: "ipv6: address not found");
        Assert.Equal(new NetlinkResult(Errno.EADDRNOTAVAIL, "ipv6: address not found"), RtNetlink.ParseAnswer(uncapped, 5, null, null));

        var capped = ErrorMessage(5, Errno.EPERM, capped: true, explanation: "some reason");
        Assert.Equal(new NetlinkResult(Errno.EPERM, "some reason"), RtNetlink.ParseAnswer(capped, 5, null, null));
    }

    [Fact]
    public void An_answer_to_another_request_is_skipped()
    {
        var stale = ErrorMessage(4, Errno.EPERM, capped: true, explanation: null);
        Assert.Null(RtNetlink.ParseAnswer(stale, 5, null, null));

        // Two answers in one datagram: the second is ours.
        var both = stale.Concat(ErrorMessage(5, 0, capped: true, explanation: null)).ToArray();
        Assert.Equal(NetlinkResult.Success, RtNetlink.ParseAnswer(both, 5, null, null));
    }

    [Fact]
    public void A_truncated_or_malformed_datagram_is_not_an_answer()
    {
        var ack = ErrorMessage(5, 0, capped: true, explanation: null);
        Assert.Null(RtNetlink.ParseAnswer(ack.AsSpan(0, ack.Length - 1), 5, null, null));
        var zeroLength = (byte[])ack.Clone();
        zeroLength[0] = 0;
        Assert.Null(RtNetlink.ParseAnswer(zeroLength, 5, null, null));
    }

    private static string Header(int length, int type, int flags, int sequence) =>
        Convert.ToHexStringLower(BitConverter.GetBytes(length)) + Convert.ToHexStringLower(BitConverter.GetBytes((ushort)type))
        + Convert.ToHexStringLower(BitConverter.GetBytes((ushort)flags)) + Convert.ToHexStringLower(BitConverter.GetBytes(sequence))
        + "00000000";

    /// <summary>An NLMSG_ERROR for request <paramref name="sequence"/> (an RTM_DELADDR of 64 bytes), as the kernel builds it.</summary>
    private static byte[] ErrorMessage(uint sequence, int errno, bool capped, string? explanation)
    {
        var request = RtNetlink.BuildAddress(Netlink.RTM_DELADDR, 0, sequence, 3, IPAddress.Parse("2001:2::10"), 64);
        var echoed = capped ? request[..Netlink.HeaderSize] : request;
        var attribute = explanation is null ? [] : Attribute(Netlink.NLMSGERR_ATTR_MSG, [.. System.Text.Encoding.ASCII.GetBytes(explanation), 0]);
        var flags = (ushort)((capped ? 0x100 : 0) | (explanation is null ? 0 : Netlink.NLM_F_ACK_TLVS));
        var header = new Netlink.MessageHeader
        {
            Length = (uint)(Netlink.HeaderSize + 4 + echoed.Length + attribute.Length),
            Type = Netlink.NLMSG_ERROR,
            Flags = flags,
            Sequence = sequence,
            PortId = 4242,
        };
        var message = new byte[header.Length];
        MemoryMarshal.Write(message, in header);
        MemoryMarshal.Write(message.AsSpan(Netlink.HeaderSize), -errno);
        echoed.CopyTo(message, Netlink.HeaderSize + 4);
        attribute.CopyTo(message, Netlink.HeaderSize + 4 + echoed.Length);
        return message;
    }

    private static byte[] Attribute(ushort type, byte[] value)
    {
        var attribute = new byte[Netlink.Align(Netlink.AttributeHeaderSize + value.Length)];
        MemoryMarshal.Write(attribute, new Netlink.Attribute { Length = (ushort)(Netlink.AttributeHeaderSize + value.Length), Type = type });
        value.CopyTo(attribute, Netlink.AttributeHeaderSize);
        return attribute;
    }
}
