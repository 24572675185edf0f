using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace Relay.Actors.Native;

/// <summary>
/// INTERNAL API. &lt;linux/netlink.h&gt;, &lt;linux/rtnetlink.h&gt;, &lt;linux/if_addr.h&gt; and
/// &lt;linux/if_link.h&gt;: the rtnetlink messages that read a link and add or delete an
/// address, and what every netlink protocol shares (headers, attributes, errors). Netlink is
/// in host byte order; every header and attribute is 4-byte aligned.
/// </summary>
internal static class Netlink
{
    public const int NETLINK_ROUTE = 0;
    public const int NETLINK_NETFILTER = 12;
    public const int SOL_NETLINK = 270;
    /// <summary>Echo only the request's header in an error, not the whole request.</summary>
    public const int NETLINK_CAP_ACK = 10;
    /// <summary>Errors carry the kernel's own explanation (NLMSGERR_ATTR_MSG).</summary>
    public const int NETLINK_EXT_ACK = 11;

    // nlmsghdr.nlmsg_type
    public const ushort NLMSG_ERROR = 2;
    public const ushort NLMSG_DONE = 3;
    /// <summary>The first type a protocol may use for its own messages; below it are the control messages above.</summary>
    public const ushort NLMSG_MIN_TYPE = 16;
    public const ushort RTM_NEWLINK = 16;
    public const ushort RTM_GETLINK = 18;
    public const ushort RTM_NEWADDR = 20;
    public const ushort RTM_DELADDR = 21;

    // nlmsghdr.nlmsg_flags
    public const ushort NLM_F_REQUEST = 0x1;
    /// <summary>One part of a multi-part answer (a dump), which NLMSG_DONE ends.</summary>
    public const ushort NLM_F_MULTI = 0x2;
    public const ushort NLM_F_ACK = 0x4;
    public const ushort NLM_F_REPLACE = 0x100;
    /// <summary>NLM_F_ROOT | NLM_F_MATCH: every object of the kind asked for.</summary>
    public const ushort NLM_F_DUMP = 0x300;
    public const ushort NLM_F_CREATE = 0x400;
    public const ushort NLM_F_APPEND = 0x800;
    /// <summary>In an NLMSG_ERROR: only the request's header is echoed (NETLINK_CAP_ACK).</summary>
    public const ushort NLM_F_CAPPED = 0x100;
    /// <summary>In an NLMSG_ERROR: extended-ack attributes follow the echoed header.</summary>
    public const ushort NLM_F_ACK_TLVS = 0x200;

    // struct nlmsgerr's attributes
    public const ushort NLMSGERR_ATTR_MSG = 1;
    /// <summary>Where in the request the attribute the kernel refused starts, counted from the request's header.</summary>
    public const ushort NLMSGERR_ATTR_OFFS = 2;

    // struct nlattr's type
    public const ushort NLA_F_NESTED = 0x8000;
    /// <summary>nla_type without its flags (NLA_F_NESTED, NLA_F_NET_BYTEORDER).</summary>
    public const ushort NLA_TYPE_MASK = 0x3FFF;

    // ifaddrmsg attributes and flags
    public const ushort IFA_ADDRESS = 1;
    public const ushort IFA_LOCAL = 2;

    /// <summary>struct ifa_cacheinfo: preferred and valid lifetimes in seconds (then two timestamps the kernel fills); 0xFFFFFFFF is forever.</summary>
    public const ushort IFA_CACHEINFO = 6;
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

    /// <summary>Writes attribute <paramref name="type"/> with <paramref name="value"/> at <paramref name="offset"/>; the offset after it, padding included.</summary>
    public static int WriteAttribute(Span<byte> message, int offset, ushort type, ReadOnlySpan<byte> value)
    {
        var attribute = new Attribute { Length = (ushort)(AttributeHeaderSize + value.Length), Type = type };
        MemoryMarshal.Write(message[offset..], in attribute);
        value.CopyTo(message[(offset + AttributeHeaderSize)..]);
        return offset + Align(attribute.Length);
    }

    /// <summary>The (type, value) attributes in <paramref name="span"/>, in order, types without their flags; a malformed length ends them.</summary>
    public static List<(ushort Type, byte[] Value)> Attributes(ReadOnlySpan<byte> span)
    {
        var attributes = new List<(ushort, byte[])>();
        while (span.Length >= AttributeHeaderSize)
        {
            var attribute = MemoryMarshal.Read<Attribute>(span);
            if (attribute.Length < AttributeHeaderSize || attribute.Length > span.Length)
            {
                break;
            }

            attributes.Add(((ushort)(attribute.Type & NLA_TYPE_MASK), span[AttributeHeaderSize..attribute.Length].ToArray()));
            span = span[Math.Min(Align(attribute.Length), span.Length)..];
        }

        return attributes;
    }

    /// <summary>
    /// The errno of an NLMSG_ERROR <paramref name="message"/> (0 for an ACK), the kernel's
    /// explanation (NLMSGERR_ATTR_MSG) and where in the request the refused attribute starts
    /// (NLMSGERR_ATTR_OFFS, -1 when not given). The attributes follow the echoed request, of
    /// which only the header is there when the kernel capped it.
    /// </summary>
    public static int ReadError(ReadOnlySpan<byte> message, out string? explanation, out int badAttributeOffset)
    {
        explanation = null;
        badAttributeOffset = -1;
        var header = MemoryMarshal.Read<MessageHeader>(message);
        var errno = -MemoryMarshal.Read<int>(message[HeaderSize..]);
        if (errno == 0 || (header.Flags & NLM_F_ACK_TLVS) == 0)
        {
            return errno;
        }

        var echoed = MemoryMarshal.Read<MessageHeader>(message[(HeaderSize + 4)..]);
        var echoedLength = (header.Flags & NLM_F_CAPPED) != 0 ? HeaderSize : (int)echoed.Length;
        var start = HeaderSize + 4 + Align(echoedLength);
        if (start > message.Length)
        {
            return errno;
        }

        foreach (var (type, value) in Attributes(message[start..]))
        {
            if (type == NLMSGERR_ATTR_MSG)
            {
                var end = value.AsSpan().IndexOf((byte)0);
                explanation = Encoding.UTF8.GetString(end < 0 ? value : value.AsSpan(0, end));
            }
            else if (type == NLMSGERR_ATTR_OFFS && value.Length == 4)
            {
                badAttributeOffset = BitConverter.ToInt32(value);
            }
        }

        return errno;
    }

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

/// <summary>
/// INTERNAL API. A bound netlink socket of one protocol (rtnetlink, nfnetlink), held open for
/// the life of its owner; it belongs to the network namespace it was opened in. Errors come
/// back as errno values: the owner knows what the request was and says so. A call made after
/// another thread disposed the socket throws <see cref="ObjectDisposedException"/>, and one
/// under way holds the descriptor until it returns, so none reaches a reused descriptor.
/// </summary>
internal sealed unsafe class NetlinkSocket : IDisposable
{
    private readonly FileDescriptor _fd;

    private NetlinkSocket(FileDescriptor fd, TimeSpan answerTimeout)
    {
        _fd = fd;
        AnswerTimeout = answerTimeout;
    }

    /// <summary>How long a receive waits for the kernel before it fails with EAGAIN.</summary>
    public TimeSpan AnswerTimeout { get; }

    /// <summary>
    /// Opens and binds a socket of <paramref name="protocol"/> whose errors carry the kernel's
    /// explanation and echo only the request's header; throws <see cref="NativeCallException"/>
    /// if the kernel refuses.
    /// </summary>
    public static NetlinkSocket Open(int protocol, TimeSpan answerTimeout)
    {
        var fd = SysSocket.Socket(SysSocket.AF_NETLINK, SysSocket.SOCK_RAW | SysSocket.SOCK_CLOEXEC, protocol);
        if (fd < 0)
        {
            throw new NativeCallException("socket(AF_NETLINK)", Marshal.GetLastPInvokeError());
        }

        var handle = new FileDescriptor(fd);
        try
        {
            var one = 1;
            // Best effort: older kernels answer without the explanation and with the whole request echoed.
            SysSocket.SetSockOpt(fd, Netlink.SOL_NETLINK, Netlink.NETLINK_EXT_ACK, &one, sizeof(int));
            SysSocket.SetSockOpt(fd, Netlink.SOL_NETLINK, Netlink.NETLINK_CAP_ACK, &one, sizeof(int));
            // The kernel always answers; the timeout only keeps a caller from hanging on a kernel bug.
            var timeout = new SysSocket.TimeVal { Seconds = (long)answerTimeout.TotalSeconds };
            if (SysSocket.SetSockOpt(fd, SysSocket.SOL_SOCKET, SysSocket.SO_RCVTIMEO, &timeout, (uint)sizeof(SysSocket.TimeVal)) < 0)
            {
                throw new NativeCallException("setsockopt(SO_RCVTIMEO)", Marshal.GetLastPInvokeError());
            }

            var local = new Netlink.SockAddr { Family = SysSocket.AF_NETLINK };
            if (SysSocket.Bind(fd, &local, (uint)sizeof(Netlink.SockAddr)) < 0)
            {
                throw new NativeCallException("bind(AF_NETLINK)", Marshal.GetLastPInvokeError());
            }

            return new NetlinkSocket(handle, answerTimeout);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Sends <paramref name="datagram"/> to the kernel as one datagram: 0, or errno.</summary>
    public int Send(ReadOnlySpan<byte> datagram)
    {
        var kernel = new Netlink.SockAddr { Family = SysSocket.AF_NETLINK };
        return _fd.SendTo(datagram, &kernel, (uint)sizeof(Netlink.SockAddr));
    }

    /// <summary>
    /// Receives one datagram from the kernel into <paramref name="buffer"/>: 0 and its length in
    /// <paramref name="read"/>, or errno (EAGAIN after <see cref="AnswerTimeout"/> without one).
    /// </summary>
    public int Receive(Span<byte> buffer, out int read)
    {
        read = 0;
        var added = false;
        try
        {
            _fd.DangerousAddRef(ref added);
            fixed (byte* p = buffer)
            {
                while (true)
                {
                    var n = SysSocket.Recv(_fd.Fd, p, buffer.Length, 0);
                    if (n >= 0)
                    {
                        read = (int)n;
                        return 0;
                    }

                    var errno = Marshal.GetLastPInvokeError();
                    if (errno != Errno.EINTR)
                    {
                        return errno;
                    }
                }
            }
        }
        finally
        {
            if (added)
            {
                _fd.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// SO_SNDBUFFORCE: lets one datagram of up to <paramref name="bytes"/> through (a netlink
    /// send larger than the send buffer fails with EMSGSIZE). Needs CAP_NET_ADMIN; 0, or errno.
    /// </summary>
    public int ForceSendBuffer(int bytes)
    {
        var added = false;
        try
        {
            _fd.DangerousAddRef(ref added);
            return SysSocket.SetSockOpt(_fd.Fd, SysSocket.SOL_SOCKET, SysSocket.SO_SNDBUFFORCE, &bytes, sizeof(int)) < 0
                ? Marshal.GetLastPInvokeError()
                : 0;
        }
        finally
        {
            if (added)
            {
                _fd.DangerousRelease();
            }
        }
    }

    public void Dispose() => _fd.Dispose();
}

/// <summary>
/// INTERNAL API. Writes netlink messages one after another into one growable buffer, as a
/// batch of them goes to the kernel in a single datagram: a header, a family header, then
/// attributes, nested ones too, each 4-byte aligned. Lengths are filled in when a message or
/// a nested attribute ends. Not thread-safe; reused with <see cref="Clear"/>, so a batch of
/// thousands of elements allocates nothing once the buffer has grown.
/// </summary>
internal sealed class NetlinkWriter
{
    private byte[] _buffer;
    private int _length;
    private int _message = -1;

    public NetlinkWriter(int capacity = 4096) => _buffer = new byte[capacity];

    /// <summary>Everything written so far.</summary>
    public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, _length);

    public int Length => _length;

    /// <summary>Where the next attribute starts, counted from its message's header (what NLMSGERR_ATTR_OFFS names).</summary>
    public int OffsetInMessage => _length - _message;

    public void Clear()
    {
        _length = 0;
        _message = -1;
    }

    /// <summary>Starts a message; <paramref name="familyHeader"/> (ifaddrmsg, nfgenmsg...) follows its header.</summary>
    public void BeginMessage(ushort type, ushort flags, uint sequence, ReadOnlySpan<byte> familyHeader)
    {
        _message = _length;
        var header = new Netlink.MessageHeader { Type = type, Flags = flags, Sequence = sequence };
        MemoryMarshal.Write(Reserve(Netlink.HeaderSize), in header);
        familyHeader.CopyTo(Reserve(Netlink.Align(familyHeader.Length)));
    }

    /// <summary>Fills in the length of the message <see cref="BeginMessage"/> started.</summary>
    public void EndMessage()
    {
        BitConverter.TryWriteBytes(_buffer.AsSpan(_message), (uint)(_length - _message));
        _message = -1;
    }

    public void Attribute(ushort type, ReadOnlySpan<byte> value)
    {
        var start = _length;
        Reserve(Netlink.Align(Netlink.AttributeHeaderSize + value.Length));
        Netlink.WriteAttribute(_buffer, start, type, value);
    }

    /// <summary>A NUL-terminated ASCII string, as the kernel's NLA_STRING/NLA_NUL_STRING policies take it.</summary>
    public void Attribute(ushort type, string value)
    {
        Span<byte> bytes = stackalloc byte[value.Length + 1];
        Encoding.ASCII.GetBytes(value, bytes);
        bytes[^1] = 0;
        Attribute(type, bytes);
    }

    /// <summary>A 32-bit value in network byte order (what nfnetlink's NLA_BE32 attributes are).</summary>
    public void AttributeBigEndian(ushort type, uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        Attribute(type, bytes);
    }

    /// <summary>A 64-bit value in network byte order.</summary>
    public void AttributeBigEndian(ushort type, ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
        Attribute(type, bytes);
    }

    /// <summary>Starts a nested attribute; pass what it returns to <see cref="EndNested"/>.</summary>
    public int BeginNested(ushort type)
    {
        var start = _length;
        MemoryMarshal.Write(Reserve(Netlink.AttributeHeaderSize), new Netlink.Attribute { Type = (ushort)(type | Netlink.NLA_F_NESTED) });
        return start;
    }

    /// <summary>Fills in the length of the nested attribute begun at <paramref name="start"/>; an attribute's length is 16 bits.</summary>
    public void EndNested(int start)
    {
        var length = _length - start;
        if (length > ushort.MaxValue)
        {
            throw new InvalidOperationException($"a nested netlink attribute of {length} bytes is over the 65535 an attribute can hold");
        }

        BitConverter.TryWriteBytes(_buffer.AsSpan(start), (ushort)length);
    }

    private Span<byte> Reserve(int bytes)
    {
        if (_length + bytes > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + bytes));
        }

        var span = _buffer.AsSpan(_length, bytes);
        span.Clear();
        _length += bytes;
        return span;
    }
}
