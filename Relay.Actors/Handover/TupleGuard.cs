using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Relay.Actors.Native;

namespace Relay.Actors.Handover;

/// <summary>A TCP connection as this node sees it: its local and its remote endpoint.</summary>
public readonly record struct TcpTuple(IPEndPoint Local, IPEndPoint Remote)
{
    public override string ToString() => $"{Local} <-> {Remote}";
}

/// <summary>What the guard's rules have dropped since its table was made: packets and bytes arriving (input hook) and leaving (output hook).</summary>
public readonly record struct TupleGuardDrops(long InboundPackets, long InboundBytes, long OutboundPackets, long OutboundBytes)
{
    public long Packets => InboundPackets + OutboundPackets;

    /// <summary>New connections' SYNs dropped while their address was held (<see cref="TupleGuard.HoldNewConnections"/>); not in <see cref="Packets"/>.</summary>
    public long HeldConnectionAttempts { get; init; }
}

/// <summary>What the kernel refused the tuple guard, in one line: the table, what was being done, errno and the kernel's own explanation.</summary>
public sealed class TupleGuardException(string message, int errno) : Exception(message)
{
    public int Errno { get; } = errno;
}

/// <summary>
/// Drops every packet of given TCP 4-tuples, in both directions, on this node: the first step
/// of a handover, before the sockets are put in repair mode (a socket in repair mode still
/// ACKs what arrives, and those bytes would be lost), and what keeps a late segment from
/// meeting a listener's reset after the silent close. It owns an nf_tables table in the
/// network namespace it was opened in:
/// <code>
/// table inet relay_handover {
///   set frz4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags timeout; timeout 60s; }
///   set frz6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; flags timeout; timeout 60s; }
///   set hold4 { type ipv4_addr; flags timeout; timeout 60s; }
///   set hold6 { type ipv6_addr; flags timeout; timeout 60s; }
///   chain in  { type filter hook input  priority -200; policy accept;
///               ip saddr . tcp sport . ip daddr . tcp dport @frz4 counter drop
///               ip6 saddr . tcp sport . ip6 daddr . tcp dport @frz6 counter drop }
///   chain out { type filter hook output priority -200; policy accept; (the same two rules) }
///   chain hold { type filter hook input priority -200; policy accept;
///                tcp flags &amp; (fin|syn|rst|ack) == syn ip daddr @hold4 counter drop
///                tcp flags &amp; (fin|syn|rst|ack) == syn ip6 daddr @hold6 counter drop }
/// }
/// </code>
/// and changes it over one NETLINK_NETFILTER socket held open, with no <c>nft</c> process: a
/// host need not have nft, and a spawn costs 3-20 ms of the handover's pause. Each call is one
/// nf_tables batch (one transaction: all of it or none) and returns once the kernel has
/// answered every message of it. A tuple is two elements, one per direction; a set element
/// disappears by itself when its timeout runs out, so a guard left behind after a silent close
/// needs no cleanup.
/// <para>
/// Thread-safe: one batch at a time. One guard per table name and network namespace: opening
/// a second replaces the first one's table.
/// </para>
/// </summary>
public sealed class TupleGuard : IDisposable
{
    public const string DefaultTableName = "relay_handover";

    private static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(5);

    // A netlink datagram must fit the sender's send buffer (net.core.wmem_default, 208 KiB on
    // Debian): about 2,000 tuples with timeouts. A larger batch raises it first (SO_SNDBUFFORCE,
    // which the CAP_NET_ADMIN that nf_tables needs allows).
    private const int DefaultSendBuffer = 200 * 1024;

    private readonly Lock _gate = new();
    private readonly NetlinkSocket _socket;
    private readonly TupleGuardBatch _batch = new();
    // Answers are ACKs and errors with only the request's header echoed (NETLINK_CAP_ACK), and dump parts of a few KB.
    private readonly byte[] _answer = new byte[64 * 1024];
    private readonly List<Refusal> _refusals = [];
    private uint _sequence;
    private int _sendBuffer = DefaultSendBuffer;
    // Whether the kernel knows NFT_MSG_DESTROYSETELEM and NFT_MSG_DESTROYTABLE (Linux 6.3).
    private bool _destroy;
    private bool _disposed;

    private TupleGuard(NetlinkSocket socket, string tableName)
    {
        _socket = socket;
        TableName = tableName;
    }

    /// <summary>The nf_tables table (family inet) the guard owns.</summary>
    public string TableName { get; }

    /// <summary>
    /// Whether the kernel has NFT_MSG_DESTROYSETELEM (Linux 6.3), as Open found out; tests turn
    /// it off to take the path of an older kernel.
    /// </summary>
    internal bool KernelHasDestroy
    {
        get
        {
            lock (_gate)
            {
                return _destroy;
            }
        }
        set
        {
            lock (_gate)
            {
                _destroy = value;
            }
        }
    }

    /// <summary>
    /// Opens the netlink socket and makes the table afresh in one batch, deleting whatever a
    /// table of that name held (a leftover of an earlier run). Throws
    /// <see cref="TupleGuardException"/> naming what is missing: CAP_NET_ADMIN, or nf_tables.
    /// </summary>
    public static TupleGuard Open(string tableName = DefaultTableName)
    {
        if (string.IsNullOrEmpty(tableName) || tableName.Length > 255 || !IsName(tableName))
        {
            throw new ArgumentException($"\"{tableName}\" is not an nf_tables table name (1-255 ASCII letters, digits and _, starting with a letter)", nameof(tableName));
        }

        NetlinkSocket socket;
        try
        {
            socket = NetlinkSocket.Open(Netlink.NETLINK_NETFILTER, AnswerTimeout);
        }
        catch (NativeCallException e)
        {
            throw new TupleGuardException(Describe(tableName, "cannot open a NETLINK_NETFILTER socket", e.Errno, null, wholeBatch: true), e.Errno);
        }

        var guard = new TupleGuard(socket, tableName);
        try
        {
            lock (guard._gate)
            {
                guard.Create();
            }

            return guard;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Drops the packets of every tuple in both directions for <paramref name="timeout"/> from
    /// now, in one batch however many tuples there are. A tuple already guarded starts its
    /// timeout again (Linux 6.11 and later; an older kernel keeps its first timeout). IPv4-mapped
    /// IPv6 addresses (a dual-stack socket's) count as the IPv4 addresses they are.
    /// </summary>
    public void Add(ReadOnlySpan<TcpTuple> tuples, TimeSpan timeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(timeout, TimeSpan.FromMilliseconds(1));
        if (tuples.IsEmpty)
        {
            return;
        }

        var flows = Flows(tuples);
        var milliseconds = (ulong)timeout.TotalMilliseconds;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            Begin();
            _batch.Elements(NfTables.NFT_MSG_NEWSETELEM, TableName, flows, v6: false, milliseconds);
            _batch.Elements(NfTables.NFT_MSG_NEWSETELEM, TableName, flows, v6: true, milliseconds);
            End();
            Run($"adding {Count(tuples.Length)}", flows);
        }
    }

    /// <summary>
    /// Lets the packets of every tuple through again, in one batch. A tuple that is not guarded,
    /// or whose timeout has run out, is not an error.
    /// </summary>
    public void Remove(ReadOnlySpan<TcpTuple> tuples)
    {
        if (tuples.IsEmpty)
        {
            return;
        }

        var flows = Flows(tuples);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_destroy)
            {
                Begin();
                _batch.Elements(NfTables.NFT_MSG_DESTROYSETELEM, TableName, flows, v6: false);
                _batch.Elements(NfTables.NFT_MSG_DESTROYSETELEM, TableName, flows, v6: true);
                End();
                Run($"removing {Count(tuples.Length)}", flows);
                return;
            }

            RemoveWithDelete(flows, $"removing {Count(tuples.Length)}");
        }
    }

    /// <summary>
    /// Drops new connections (a SYN without ACK) to <paramref name="addresses"/> for
    /// <paramref name="timeout"/> from now, while established ones pass: what a node does while
    /// its listeners are closed for a handover, so that a client connecting then sends its SYN
    /// again a second later, to the node that holds the address by then, instead of meeting a
    /// reset. Expires by itself, so a node that dies holding them does not refuse for long.
    /// </summary>
    public void HoldNewConnections(ReadOnlySpan<IPAddress> addresses, TimeSpan timeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(timeout, TimeSpan.FromMilliseconds(1));
        if (addresses.IsEmpty)
        {
            return;
        }

        var unmapped = Unmapped(addresses);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            Begin();
            _batch.HeldAddresses(NfTables.NFT_MSG_NEWSETELEM, TableName, unmapped, v6: false, (ulong)timeout.TotalMilliseconds);
            _batch.HeldAddresses(NfTables.NFT_MSG_NEWSETELEM, TableName, unmapped, v6: true, (ulong)timeout.TotalMilliseconds);
            End();
            RunForAddresses("holding new connections to", unmapped);
        }
    }

    /// <summary>Lets new connections to <paramref name="addresses"/> through again; an address not held (or expired) is not an error.</summary>
    public void ReleaseNewConnections(ReadOnlySpan<IPAddress> addresses)
    {
        var unmapped = Unmapped(addresses);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            // One address per batch without the DESTROY messages: a missing element fails its
            // whole batch (ENOENT), and a node holds one or two addresses.
            var batches = _destroy ? 1 : unmapped.Length;
            for (var i = 0; i < batches; i++)
            {
                var part = _destroy ? unmapped : unmapped.AsSpan(i, 1);
                var type = _destroy ? NfTables.NFT_MSG_DESTROYSETELEM : NfTables.NFT_MSG_DELSETELEM;
                Begin();
                _batch.HeldAddresses(type, TableName, part, v6: false);
                _batch.HeldAddresses(type, TableName, part, v6: true);
                End();
                var errno = Commit();
                if (errno != 0)
                {
                    throw new TupleGuardException(Describe(TableName, $"releasing new connections to {string.Join(", ", part.ToArray())}", errno,
                        NoAnswer(errno), false), errno);
                }

                if (_refusals is [{ } refusal, ..] && !(refusal.Errno == Errno.ENOENT && !_destroy && FlowAt(refusal) is not null))
                {
                    throw new TupleGuardException(Describe(TableName, $"releasing new connections to {string.Join(", ", part.ToArray())}",
                        refusal.Errno, refusal.Explanation, refusal.Sequence == _batch.BeginSequence), refusal.Errno);
                }
            }
        }
    }

    /// <summary>The rules' counters: what the guard has dropped, read from the kernel now.</summary>
    public TupleGuardDrops Drops()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var sequence = _sequence++;
            _batch.DumpRules(sequence, TableName);
            var errno = Send(_batch.Bytes);
            if (errno != 0)
            {
                throw new TupleGuardException(Describe(TableName, "reading the counters: sending the request failed", errno, null, false), errno);
            }

            long inPackets = 0, inBytes = 0, outPackets = 0, outBytes = 0, held = 0;
            while (true)
            {
                errno = _socket.Receive(_answer, out var read);
                if (errno != 0)
                {
                    throw new TupleGuardException(Describe(TableName, "reading the counters", errno, NoAnswer(errno), false), errno);
                }

                var datagram = _answer.AsSpan(0, read);
                while (Next(ref datagram, out var header, out var message))
                {
                    if (header.Sequence != sequence)
                    {
                        continue;
                    }

                    if (header.Type == Netlink.NLMSG_DONE)
                    {
                        return new TupleGuardDrops(inPackets, inBytes, outPackets, outBytes) { HeldConnectionAttempts = held };
                    }

                    if (header.Type == Netlink.NLMSG_ERROR && message.Length >= Netlink.HeaderSize + Netlink.ErrorSize)
                    {
                        var error = Netlink.ReadError(message, out var explanation, out _);
                        throw new TupleGuardException(Describe(TableName, "reading the counters", error, explanation, false), error);
                    }

                    if (header.Type == NfTables.MessageType(NfTables.NFT_MSG_NEWRULE))
                    {
                        var (chain, packets, bytes) = RuleCounter(message);
                        if (chain == TupleGuardBatch.InChain)
                        {
                            inPackets += packets;
                            inBytes += bytes;
                        }
                        else if (chain == TupleGuardBatch.OutChain)
                        {
                            outPackets += packets;
                            outBytes += bytes;
                        }
                        else if (chain == TupleGuardBatch.HeldChain)
                        {
                            held += packets;
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// Closes the netlink socket and leaves the table in the kernel: what a node does when it
    /// stops, since the tuples it handed over must stay dropped on this host until their
    /// elements expire, even after the process has gone (a late segment would otherwise draw a
    /// reset from this host). The next <see cref="Open"/> replaces the table.
    /// </summary>
    public void CloseKeepingTable()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _socket.Dispose();
        }
    }

    /// <summary>
    /// Deletes the table, and with it every guarded tuple; a table already gone is not an error.
    /// A node that has handed circuits off keeps its guard until the longest timeout given to
    /// <see cref="Add"/> has run out: a late segment of a closed circuit would otherwise meet a
    /// reset from this node's stack. A guard never disposed leaves its table to the next Open.
    /// </summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            try
            {
                Begin();
                _batch.DeleteTable(TableName, _destroy);
                End();
                // Best effort: a table left behind is replaced by the next Open, and its elements expire.
                Commit();
            }
            finally
            {
                _socket.Dispose();
            }
        }
    }

    /// <summary>The table, then whether the kernel has the DESTROY messages (one element removed that is not there).</summary>
    private void Create()
    {
        Begin();
        _batch.CreateTable(TableName);
        End();
        Run("cannot create the table", []);

        GuardFlow[] probe = [new(IPAddress.Any, 0, IPAddress.Any, 0)];
        Begin();
        _batch.Elements(NfTables.NFT_MSG_DESTROYSETELEM, TableName, probe, v6: false);
        End();
        var errno = Commit();
        if (errno != 0)
        {
            throw new TupleGuardException(Describe(TableName, "asking whether the kernel can destroy set elements", errno, NoAnswer(errno), false), errno);
        }

        // A kernel before 6.3 does not know the message type: EINVAL (nfnetlink finds no handler).
        _destroy = _refusals.Count == 0;
        if (_refusals is [{ Errno: not (Errno.EINVAL or Errno.EOPNOTSUPP) } refusal])
        {
            throw Refused("asking whether the kernel can destroy set elements", refusal, probe);
        }
    }

    /// <summary>
    /// Before Linux 6.3 only NFT_MSG_DELSETELEM exists, and an element that is not there fails
    /// the whole batch with ENOENT. Each message that failed names its first missing element
    /// (NLMSGERR_ATTR_OFFS); those are taken out and the rest sent again, so each round takes
    /// out at least one: a few rounds when a few elements expired.
    /// </summary>
    private void RemoveWithDelete(GuardFlow[] flows, string doing)
    {
        var remaining = new List<GuardFlow>(flows);
        var missing = new List<int>();
        while (remaining.Count > 0)
        {
            var span = CollectionsMarshal.AsSpan(remaining);
            Begin();
            _batch.Elements(NfTables.NFT_MSG_DELSETELEM, TableName, span, v6: false);
            _batch.Elements(NfTables.NFT_MSG_DELSETELEM, TableName, span, v6: true);
            End();
            var errno = Commit();
            if (errno != 0)
            {
                throw new TupleGuardException(Describe(TableName, doing, errno, NoAnswer(errno), false), errno);
            }

            if (_refusals.Count == 0)
            {
                return;
            }

            missing.Clear();
            foreach (var refusal in _refusals)
            {
                if (refusal.Errno != Errno.ENOENT || FlowAt(refusal) is not { } index)
                {
                    throw Refused(doing, refusal, span);
                }

                missing.Add(index);
            }

            missing.Sort();
            for (var i = missing.Count - 1; i >= 0; i--)
            {
                remaining.RemoveAt(missing[i]);
            }
        }
    }

    private void Begin() => _batch.Begin(_sequence);

    private void End()
    {
        _batch.End();
        _sequence = _batch.NextSequence;
    }

    /// <summary>Commits the batch; throws naming the first element or message the kernel refused.</summary>
    private void Run(string doing, ReadOnlySpan<GuardFlow> flows)
    {
        var errno = Commit();
        if (errno != 0)
        {
            throw new TupleGuardException(Describe(TableName, doing, errno, NoAnswer(errno), false), errno);
        }

        if (_refusals.Count > 0)
        {
            throw Refused(doing, _refusals[0], flows);
        }
    }

    /// <summary>
    /// Sends the batch and reads the answer to each of its messages. Returns errno when the
    /// batch could not be sent or answered; otherwise <see cref="_refusals"/> holds every error
    /// the kernel answered, in order (on any, it has undone the whole batch): one for the
    /// batch itself when it refused all of it (no CAP_NET_ADMIN, no nf_tables), else one per
    /// message that failed.
    /// </summary>
    private int Commit()
    {
        _refusals.Clear();
        var errno = Send(_batch.Bytes);
        if (errno != 0)
        {
            return errno;
        }

        var unanswered = _batch.MessageCount;
        while (unanswered > 0)
        {
            errno = _socket.Receive(_answer, out var read);
            if (errno != 0)
            {
                return errno;
            }

            var datagram = _answer.AsSpan(0, read);
            while (Next(ref datagram, out var header, out var message))
            {
                // Answers to an earlier batch that timed out may still be queued: they have older sequence numbers.
                if (header.Type != Netlink.NLMSG_ERROR || message.Length < Netlink.HeaderSize + Netlink.ErrorSize
                    || header.Sequence < _batch.BeginSequence || header.Sequence >= _batch.EndSequence)
                {
                    continue;
                }

                var error = Netlink.ReadError(message, out var explanation, out var offset);
                if (header.Sequence == _batch.BeginSequence)
                {
                    if (error != 0)
                    {
                        _refusals.Clear();
                        _refusals.Add(new Refusal(error, explanation, header.Sequence, offset));
                        return 0;
                    }

                    continue;
                }

                unanswered--;
                if (error != 0)
                {
                    _refusals.Add(new Refusal(error, explanation, header.Sequence, offset));
                }
            }
        }

        return 0;
    }

    private int Send(ReadOnlySpan<byte> datagram)
    {
        if (datagram.Length > _sendBuffer)
        {
            // The kernel doubles what it is given (for its bookkeeping); a margin spares a setsockopt per slightly larger batch.
            var wanted = datagram.Length + datagram.Length / 4;
            var errno = _socket.ForceSendBuffer(wanted);
            if (errno != 0)
            {
                return errno;
            }

            _sendBuffer = wanted;
        }

        return _socket.Send(datagram);
    }

    /// <summary>The next netlink message of <paramref name="datagram"/>; false at its end or at a malformed length.</summary>
    private static bool Next(ref Span<byte> datagram, out Netlink.MessageHeader header, out ReadOnlySpan<byte> message)
    {
        header = default;
        message = default;
        if (datagram.Length < Netlink.HeaderSize)
        {
            return false;
        }

        header = MemoryMarshal.Read<Netlink.MessageHeader>(datagram);
        if (header.Length < Netlink.HeaderSize || header.Length > datagram.Length)
        {
            return false;
        }

        message = datagram[..(int)header.Length];
        datagram = datagram[Math.Min(Netlink.Align((int)header.Length), datagram.Length)..];
        return true;
    }

    /// <summary>A rule of the dump: its chain and what its counter expression holds.</summary>
    private static (string Chain, long Packets, long Bytes) RuleCounter(ReadOnlySpan<byte> message)
    {
        string chain = "";
        long packets = 0, bytes = 0;
        foreach (var (type, value) in Netlink.Attributes(message[(Netlink.HeaderSize + NfTables.GenMsgSize)..]))
        {
            if (type == NfTables.NFTA_RULE_CHAIN)
            {
                chain = CString(value);
            }
            else if (type == NfTables.NFTA_RULE_EXPRESSIONS)
            {
                foreach (var (_, expression) in Netlink.Attributes(value))
                {
                    var attributes = Netlink.Attributes(expression);
                    if (!attributes.Exists(a => a.Type == NfTables.NFTA_EXPR_NAME && CString(a.Value) == "counter"))
                    {
                        continue;
                    }

                    foreach (var (dataType, data) in attributes)
                    {
                        if (dataType != NfTables.NFTA_EXPR_DATA)
                        {
                            continue;
                        }

                        foreach (var (counterType, counter) in Netlink.Attributes(data))
                        {
                            if (counterType == NfTables.NFTA_COUNTER_PACKETS && counter.Length == 8)
                            {
                                packets = (long)BinaryPrimitives.ReadUInt64BigEndian(counter);
                            }
                            else if (counterType == NfTables.NFTA_COUNTER_BYTES && counter.Length == 8)
                            {
                                bytes = (long)BinaryPrimitives.ReadUInt64BigEndian(counter);
                            }
                        }
                    }
                }
            }
        }

        return (chain, packets, bytes);
    }

    private static string CString(byte[] value)
    {
        var end = Array.IndexOf(value, (byte)0);
        return Encoding.ASCII.GetString(value, 0, end < 0 ? value.Length : end);
    }

    /// <summary>Both directions of each tuple, addresses of one family: [2i] what this node sends, [2i+1] what it receives.</summary>
    internal static GuardFlow[] Flows(ReadOnlySpan<TcpTuple> tuples)
    {
        var flows = new GuardFlow[2 * tuples.Length];
        for (var i = 0; i < tuples.Length; i++)
        {
            var tuple = tuples[i];
            if (tuple.Local is null || tuple.Remote is null)
            {
                throw new ArgumentException($"tuple {i} lacks its local or remote endpoint", nameof(tuples));
            }

            var local = Unmapped(tuple.Local.Address);
            var remote = Unmapped(tuple.Remote.Address);
            if (local.AddressFamily != remote.AddressFamily
                || local.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
            {
                throw new ArgumentException($"tuple {tuple}: the local and remote addresses must both be IPv4 or both IPv6", nameof(tuples));
            }

            flows[2 * i] = new GuardFlow(local, tuple.Local.Port, remote, tuple.Remote.Port);
            flows[2 * i + 1] = new GuardFlow(remote, tuple.Remote.Port, local, tuple.Local.Port);
        }

        return flows;
    }

    private static IPAddress Unmapped(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    private static IPAddress[] Unmapped(ReadOnlySpan<IPAddress> addresses)
    {
        var unmapped = new IPAddress[addresses.Length];
        for (var i = 0; i < addresses.Length; i++)
        {
            unmapped[i] = Unmapped(addresses[i]);
        }

        return unmapped;
    }

    /// <summary>Throws naming the address the kernel refused, or what it refused of the batch.</summary>
    private void RunForAddresses(string doing, IPAddress[] addresses)
    {
        var errno = Commit();
        if (errno != 0)
        {
            throw new TupleGuardException(Describe(TableName, $"{doing} {string.Join(", ", (object[])addresses)}", errno, NoAnswer(errno), false), errno);
        }

        if (_refusals is [{ } refusal, ..])
        {
            var address = FlowAt(refusal) is { } index && index < addresses.Length ? addresses[index].ToString() : string.Join(", ", (object[])addresses);
            throw new TupleGuardException(Describe(TableName, $"{doing} {address}", refusal.Errno, refusal.Explanation,
                refusal.Sequence == _batch.BeginSequence), refusal.Errno);
        }
    }

    /// <summary>The index of the flow whose element the kernel refused, when it said which (NLMSGERR_ATTR_OFFS).</summary>
    private int? FlowAt(Refusal refusal)
    {
        foreach (var element in _batch.ElementPositions)
        {
            if (element.Sequence == refusal.Sequence && element.Offset == refusal.Offset)
            {
                return element.Flow;
            }
        }

        return null;
    }

    private TupleGuardException Refused(string doing, Refusal refusal, ReadOnlySpan<GuardFlow> flows)
    {
        var wholeBatch = refusal.Sequence == _batch.BeginSequence;
        var element = FlowAt(refusal) is { } index && index < flows.Length ? flows[index].ToString() : null;
        var what = element is null ? doing : $"{doing}: element {element}";
        var line = Describe(TableName, what, refusal.Errno, refusal.Explanation, wholeBatch);
        // The kernel names the table or set attribute when either is missing, an element when only it is.
        if (refusal.Errno == Errno.ENOENT && element is null && !wholeBatch)
        {
            line += "; the table or a set of it is gone (deleted by another program?): opening the guard again makes it";
        }

        return new TupleGuardException(line, refusal.Errno);
    }

    /// <summary>One line: the table, what was being done, errno, what to do about it, and the kernel's explanation.</summary>
    private static string Describe(string table, string doing, int errno, string? explanation, bool wholeBatch)
    {
        var hint = errno switch
        {
            Errno.EPERM or Errno.EACCES => ": the relay needs CAP_NET_ADMIN (run it as root, or give it the capability: ops/systemd/relay.service)",
            // nfnetlink answers a batch for a subsystem it does not have with EOPNOTSUPP; socket() without nfnetlink is EPROTONOSUPPORT.
            Errno.EOPNOTSUPP when wholeBatch => ": the kernel has no nf_tables (CONFIG_NF_TABLES; modprobe nf_tables)",
            Errno.EPROTONOSUPPORT => ": the kernel has no nfnetlink (CONFIG_NETFILTER_NETLINK; modprobe nfnetlink)",
            Errno.EAFNOSUPPORT => ": the kernel's nf_tables has no inet family (CONFIG_NF_TABLES_INET)",
            _ => "",
        };
        var kernel = explanation is { Length: > 0 } ? $" ({explanation})" : "";
        return $"tuple guard (table inet {table}): {doing}: {Errno.Describe(errno)}{hint}{kernel}";
    }

    private static string? NoAnswer(int errno) => errno == Errno.EAGAIN ? $"no answer from the kernel within {AnswerTimeout.TotalSeconds:N0} s" : null;

    private static string Count(int tuples) => tuples == 1 ? "1 tuple" : $"{tuples} tuples";

    private static bool IsName(string name)
    {
        if (!char.IsAsciiLetter(name[0]))
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '_')
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>An error the kernel answered: for the batch (<see cref="TupleGuardBatch.BeginSequence"/>) or one of its messages, and where in it.</summary>
    private readonly record struct Refusal(int Errno, string? Explanation, uint Sequence, int Offset);
}
