using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace Relay.Actors.Native;

/// <summary>What the kernel answered a netlink request: errno 0 for success, and its own explanation when it gave one.</summary>
internal readonly record struct NetlinkResult(int Errno, string? KernelMessage = null)
{
    public bool Ok => Errno == 0;

    public static readonly NetlinkResult Success = new(0);
}

/// <summary>
/// INTERNAL API. A NETLINK_ROUTE socket that does what <c>ip link show</c>,
/// <c>ip addr replace</c> and <c>ip addr del</c> do, without starting a process: a request
/// and its answer take tens of microseconds. Held open for the life of its owner; a socket
/// belongs to the network namespace it was opened in. Thread-safe (one request at a time).
/// </summary>
internal sealed unsafe class RtNetlink : IDisposable
{
    private static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(5);

    private readonly NetlinkSocket _socket;
    private readonly Lock _gate = new();
    // Large enough for any single link or error message (a link with all its statistics is a few KB).
    private readonly byte[] _answer = new byte[64 * 1024];
    private uint _sequence;

    private RtNetlink(NetlinkSocket socket) => _socket = socket;

    /// <summary>Opens and binds the socket; throws <see cref="NativeCallException"/> if the kernel refuses.</summary>
    public static RtNetlink Open() => new(NetlinkSocket.Open(Netlink.NETLINK_ROUTE, AnswerTimeout));

    /// <summary>RTM_GETLINK by name: the interface's index and its hardware (MAC) address.</summary>
    public NetlinkResult GetLink(string name, out int index, out byte[] hardwareAddress)
    {
        var seq = NextSequence();
        var found = -1;
        byte[] address = [];
        var result = Transact(BuildGetLink(seq, name), seq, Netlink.RTM_NEWLINK, reply =>
        {
            var info = MemoryMarshal.Read<Netlink.IfInfoMsg>(reply[Netlink.HeaderSize..]);
            found = info.Index;
            foreach (var (type, value) in Netlink.Attributes(reply[(Netlink.HeaderSize + sizeof(Netlink.IfInfoMsg))..]))
            {
                if (type == Netlink.IFLA_ADDRESS)
                {
                    address = value.ToArray();
                }
            }
        });
        index = found;
        hardwareAddress = address;
        return result;
    }

    /// <summary>
    /// RTM_NEWADDR with NLM_F_CREATE|NLM_F_REPLACE, as <c>ip addr replace</c>: an address already
    /// there is not an error. With <paramref name="lifetime"/> the kernel removes the address by
    /// itself when it runs out (<c>valid_lft</c>); without, it is forever, and replacing an
    /// address that had a lifetime makes it forever.
    /// </summary>
    public NetlinkResult ReplaceAddress(int index, IPAddress address, int prefixLength, TimeSpan? lifetime = null)
    {
        var seq = NextSequence();
        return Transact(BuildAddress(Netlink.RTM_NEWADDR, Netlink.NLM_F_CREATE | Netlink.NLM_F_REPLACE, seq, index, address, prefixLength, lifetime),
            seq, null, null);
    }

    /// <summary>RTM_DELADDR, as <c>ip addr del</c>; an address that is not there answers EADDRNOTAVAIL.</summary>
    public NetlinkResult DeleteAddress(int index, IPAddress address, int prefixLength)
    {
        var seq = NextSequence();
        return Transact(BuildAddress(Netlink.RTM_DELADDR, 0, seq, index, address, prefixLength), seq, null, null);
    }

    /// <summary>
    /// An RTM_NEWADDR/RTM_DELADDR request with an ACK asked for. IFA_LOCAL and IFA_ADDRESS are both
    /// the address (no peer), as iproute2 sends them. An IPv6 address skips duplicate address
    /// detection: a VIP moving between nodes must answer at once, and the node it came from has
    /// given it up (or is dead).
    /// </summary>
    internal static byte[] BuildAddress(ushort type, ushort flags, uint sequence, int index, IPAddress address, int prefixLength,
        TimeSpan? lifetime = null)
    {
        var bytes = address.GetAddressBytes();
        var v6 = address.AddressFamily == AddressFamily.InterNetworkV6;
        const int CacheInfoSize = 4 * sizeof(uint);
        var length = Netlink.HeaderSize + sizeof(Netlink.IfAddrMsg) + 2 * Netlink.Align(Netlink.AttributeHeaderSize + bytes.Length)
            + (lifetime is null ? 0 : Netlink.Align(Netlink.AttributeHeaderSize + CacheInfoSize));
        var message = new byte[length];
        var header = new Netlink.MessageHeader
        {
            Length = (uint)length,
            Type = type,
            Flags = (ushort)(Netlink.NLM_F_REQUEST | Netlink.NLM_F_ACK | flags),
            Sequence = sequence,
        };
        MemoryMarshal.Write(message, in header);
        var ifa = new Netlink.IfAddrMsg
        {
            Family = (byte)(v6 ? 10 : 2),
            PrefixLength = (byte)prefixLength,
            Flags = v6 ? Netlink.IFA_F_NODAD : (byte)0,
            Index = index,
        };
        MemoryMarshal.Write(message.AsSpan(Netlink.HeaderSize), in ifa);
        var offset = Netlink.HeaderSize + sizeof(Netlink.IfAddrMsg);
        offset = Netlink.WriteAttribute(message, offset, Netlink.IFA_LOCAL, bytes);
        offset = Netlink.WriteAttribute(message, offset, Netlink.IFA_ADDRESS, bytes);
        if (lifetime is { } life)
        {
            // Preferred and valid lifetime alike, whole seconds, at least one; the timestamps are the kernel's.
            var seconds = (uint)Math.Clamp(Math.Ceiling(life.TotalSeconds), 1, uint.MaxValue - 1);
            Span<byte> cacheInfo = stackalloc byte[CacheInfoSize];
            cacheInfo.Clear();
            MemoryMarshal.Write(cacheInfo, in seconds);
            MemoryMarshal.Write(cacheInfo[sizeof(uint)..], in seconds);
            Netlink.WriteAttribute(message, offset, Netlink.IFA_CACHEINFO, cacheInfo);
        }

        return message;
    }

    /// <summary>An RTM_GETLINK request for the interface named <paramref name="name"/> (IFLA_IFNAME, NUL-terminated), without statistics.</summary>
    internal static byte[] BuildGetLink(uint sequence, string name)
    {
        var nameBytes = new byte[Encoding.ASCII.GetByteCount(name) + 1];
        Encoding.ASCII.GetBytes(name, nameBytes);
        var mask = BitConverter.GetBytes(Netlink.RTEXT_FILTER_SKIP_STATS);
        var length = Netlink.HeaderSize + sizeof(Netlink.IfInfoMsg) + Netlink.Align(Netlink.AttributeHeaderSize + mask.Length)
            + Netlink.Align(Netlink.AttributeHeaderSize + nameBytes.Length);
        var message = new byte[length];
        var header = new Netlink.MessageHeader
        {
            Length = (uint)length,
            Type = Netlink.RTM_GETLINK,
            Flags = Netlink.NLM_F_REQUEST,
            Sequence = sequence,
        };
        MemoryMarshal.Write(message, in header);
        var offset = Netlink.WriteAttribute(message, Netlink.HeaderSize + sizeof(Netlink.IfInfoMsg), Netlink.IFLA_EXT_MASK, mask);
        Netlink.WriteAttribute(message, offset, Netlink.IFLA_IFNAME, nameBytes);
        return message;
    }

    /// <summary>
    /// The answer to request <paramref name="sequence"/> in one datagram from the kernel: an
    /// NLMSG_ERROR (errno, 0 for an ACK, and the kernel's explanation if any), or a message of
    /// <paramref name="replyType"/> given to <paramref name="onReply"/>. Null when the datagram
    /// holds neither (an answer to another request).
    /// </summary>
    internal static NetlinkResult? ParseAnswer(ReadOnlySpan<byte> datagram, uint sequence, ushort? replyType, ReplyReader? onReply)
    {
        while (datagram.Length >= Netlink.HeaderSize)
        {
            var header = MemoryMarshal.Read<Netlink.MessageHeader>(datagram);
            if (header.Length < Netlink.HeaderSize || header.Length > datagram.Length)
            {
                return null;
            }

            var message = datagram[..(int)header.Length];
            if (header.Sequence == sequence)
            {
                if (header.Type == Netlink.NLMSG_ERROR && message.Length >= Netlink.HeaderSize + Netlink.ErrorSize)
                {
                    var error = Netlink.ReadError(message, out var explanation, out _);
                    return new NetlinkResult(error, explanation);
                }

                if (header.Type == replyType && onReply is not null)
                {
                    onReply(message);
                    return NetlinkResult.Success;
                }
            }

            datagram = datagram[Math.Min(Netlink.Align((int)header.Length), datagram.Length)..];
        }

        return null;
    }

    internal delegate void ReplyReader(ReadOnlySpan<byte> message);

    private NetlinkResult Transact(byte[] request, uint sequence, ushort? replyType, ReplyReader? onReply)
    {
        lock (_gate)
        {
            var errno = _socket.Send(request);
            if (errno != 0)
            {
                return new NetlinkResult(errno, "sending to the kernel failed");
            }

            // Answers to earlier requests that timed out may still be queued: skip them by sequence number.
            while (true)
            {
                errno = _socket.Receive(_answer, out var read);
                if (errno != 0)
                {
                    return new NetlinkResult(errno, errno == Errno.EAGAIN
                        ? $"no answer from the kernel within {AnswerTimeout.TotalSeconds:N0} s"
                        : "reading the kernel's answer failed");
                }

                if (ParseAnswer(_answer.AsSpan(0, read), sequence, replyType, onReply) is { } result)
                {
                    return result;
                }
            }
        }
    }

    private uint NextSequence() => Interlocked.Increment(ref _sequence);

    public void Dispose() => _socket.Dispose();
}
