using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Relay.Actors.Native;

namespace Relay.Actors.Handover;

/// <summary>
/// INTERNAL API. One direction of a TCP 4-tuple as the guard's sets hold it: packets from
/// <see cref="Source"/> to <see cref="Destination"/>, both of one family (IPv4-mapped IPv6
/// addresses already made IPv4).
/// </summary>
internal readonly record struct GuardFlow(IPAddress Source, int SourcePort, IPAddress Destination, int DestinationPort)
{
    public bool IsV6 => Source.AddressFamily == AddressFamily.InterNetworkV6;

    public override string ToString() =>
        IsV6 ? $"[{Source}]:{SourcePort} -> [{Destination}]:{DestinationPort}" : $"{Source}:{SourcePort} -> {Destination}:{DestinationPort}";
}

/// <summary>
/// INTERNAL API. The nf_tables messages of the tuple guard, written into one batch: the table
/// with its two sets and two chains, the elements added or removed, and a rules dump. The
/// encoding is what nft 1.0.6 sends for the same ruleset (captured with
/// <c>strace -e write=3 nft -f</c>), expression for expression; the differences are that every
/// message asks for an ACK, and that the sets carry no NFTA_SET_USERDATA (nft's own notes on
/// how to print the key; <c>nft list</c> prints the same without them).
/// </summary>
internal sealed class TupleGuardBatch
{
    public const string InChain = "in";
    public const string OutChain = "out";
    public const string V4Set = "frz4";
    public const string V6Set = "frz6";

    /// <summary>The chain that drops new connections to the held addresses (its own, so the tuples' counters stay the tuples').</summary>
    public const string HeldChain = "hold";
    public const string V4HeldSet = "hold4";
    public const string V6HeldSet = "hold6";

    /// <summary>The sets' own timeout, for an element added without one (the guard always gives one).</summary>
    public const ulong SetTimeoutMilliseconds = 60_000;

    /// <summary>Hook priority of both chains, as the prototype had it: ahead of mangle (-150) and the filter chains (0), level with conntrack.</summary>
    public const int Priority = -200;

    // An element's key is the concatenation of its four fields, each padded to 4 bytes (as
    // nft's concatenations are): address, port, address, port.
    public const int V4KeyLength = 4 + 4 + 4 + 4;
    public const int V6KeyLength = 16 + 4 + 16 + 4;

    // Set ids name a set to the rules of the same transaction, before it has a handle.
    private const uint V4SetId = 1;
    private const uint V6SetId = 2;
    private const uint V4HeldSetId = 3;
    private const uint V6HeldSetId = 4;

    // nft's datatype numbers (src/datatype.h): a concatenation's type packs them 6 bits each, first field highest.
    private const uint TYPE_IPADDR = 7;
    private const uint TYPE_IP6ADDR = 8;
    private const uint TYPE_INET_SERVICE = 13;

    private const byte IPPROTO_TCP = 6;

    // TCP's flags byte (offset 13): a connection's first segment has SYN without ACK; FIN and
    // RST are in the mask so that no odd combination counts as one. ECE and CWR (an ECN-setup
    // SYN) are outside it.
    private const byte TcpFlagsOffset = 13;
    private const byte TcpFin = 0x01;
    private const byte TcpSyn = 0x02;
    private const byte TcpRst = 0x04;
    private const byte TcpAck = 0x10;

    private readonly NetlinkWriter _writer = new(64 * 1024);
    private readonly List<ElementAt> _elements = [];
    private uint _next;

    /// <summary>Where an element starts in the batch: the sequence number of its message and its offset in it (what NLMSGERR_ATTR_OFFS names).</summary>
    public readonly record struct ElementAt(uint Sequence, int Offset, int Flow);

    public ReadOnlySpan<byte> Bytes => _writer.Written;

    /// <summary>The sequence number of NFNL_MSG_BATCH_BEGIN; the kernel answers a batch it refuses as a whole with it.</summary>
    public uint BeginSequence { get; private set; }

    /// <summary>The sequence number of NFNL_MSG_BATCH_END; the messages are those in between, each answered once.</summary>
    public uint EndSequence { get; private set; }

    public int MessageCount => (int)(EndSequence - BeginSequence - 1);

    /// <summary>Where each element written since <see cref="Begin"/> is, in order.</summary>
    public IReadOnlyList<ElementAt> ElementPositions => _elements;

    /// <summary>The concatenated key type nft gives <c>ipv4_addr . inet_service . ipv4_addr . inet_service</c> (0x1cd1cd), or its IPv6 twin.</summary>
    public static uint KeyType(bool v6)
    {
        var address = v6 ? TYPE_IP6ADDR : TYPE_IPADDR;
        return (((((address << 6) | TYPE_INET_SERVICE) << 6) | address) << 6) | TYPE_INET_SERVICE;
    }

    /// <summary>Starts a batch whose first message has sequence number <paramref name="firstSequence"/>.</summary>
    public void Begin(uint firstSequence)
    {
        _writer.Clear();
        _elements.Clear();
        BeginSequence = firstSequence;
        _next = firstSequence;
        // res_id names the subsystem the batch is for, in network byte order.
        _writer.BeginMessage(NfTables.NFNL_MSG_BATCH_BEGIN, Netlink.NLM_F_REQUEST, _next++, [0, NfTables.NFNETLINK_V0, 0, NfTables.NFNL_SUBSYS_NFTABLES]);
        _writer.EndMessage();
    }

    public void End()
    {
        EndSequence = _next;
        _writer.BeginMessage(NfTables.NFNL_MSG_BATCH_END, Netlink.NLM_F_REQUEST, _next++, [0, NfTables.NFNETLINK_V0, 0, NfTables.NFNL_SUBSYS_NFTABLES]);
        _writer.EndMessage();
    }

    /// <summary>The sequence number after the batch, for the next one.</summary>
    public uint NextSequence => _next;

    /// <summary>
    /// The table as <c>nft -f</c> makes it from "table inet T; delete table inet T; table inet T {...}":
    /// declaring it first makes the delete succeed whether or not a leftover is there, and the
    /// whole replacement is one transaction, so no packet sees a half-made table.
    /// </summary>
    public void CreateTable(string table)
    {
        Table(NfTables.NFT_MSG_NEWTABLE, table);
        Table(NfTables.NFT_MSG_DELTABLE, table);
        Table(NfTables.NFT_MSG_NEWTABLE, table);
        Chain(table, InChain, NfTables.NF_INET_LOCAL_IN);
        Chain(table, OutChain, NfTables.NF_INET_LOCAL_OUT);
        Chain(table, HeldChain, NfTables.NF_INET_LOCAL_IN);
        Set(table, V4Set, KeyType(v6: false), V4KeyLength, V4SetId);
        Set(table, V6Set, KeyType(v6: true), V6KeyLength, V6SetId);
        Set(table, V4HeldSet, TYPE_IPADDR, 4, V4HeldSetId);
        Set(table, V6HeldSet, TYPE_IP6ADDR, 16, V6HeldSetId);
        foreach (var chain in new[] { InChain, OutChain })
        {
            Rule(table, chain, v6: false);
            Rule(table, chain, v6: true);
        }

        HeldRule(table, v6: false);
        HeldRule(table, v6: true);
    }

    /// <summary>NFT_MSG_DELTABLE, or NFT_MSG_DESTROYTABLE, which is not an error when the table is gone.</summary>
    public void DeleteTable(string table, bool destroy) => Table(destroy ? NfTables.NFT_MSG_DESTROYTABLE : NfTables.NFT_MSG_DELTABLE, table);

    /// <summary>
    /// The <paramref name="flows"/> of one family as elements of its set, in messages of
    /// <paramref name="type"/> (NEWSETELEM, DELSETELEM, DESTROYSETELEM). A message's element
    /// list is one attribute, whose length is 16 bits, so a long list goes in several messages
    /// of the same batch. <paramref name="timeoutMilliseconds"/> (for NEWSETELEM) is both the
    /// element's timeout and its expiration: an element already there then starts its timeout
    /// again (Linux 6.11 and later update it; older kernels keep the first one).
    /// </summary>
    public void Elements(byte type, string table, ReadOnlySpan<GuardFlow> flows, bool v6, ulong timeoutMilliseconds = 0)
    {
        var list = new ElementList(this, type, table, v6 ? V6Set : V4Set, v6 ? V6KeyLength : V4KeyLength, timeoutMilliseconds);
        Span<byte> key = stackalloc byte[list.KeyLength];
        for (var i = 0; i < flows.Length; i++)
        {
            if (flows[i].IsV6 == v6)
            {
                WriteKey(key, flows[i]);
                list.Add(key, i);
            }
        }

        list.End();
    }

    /// <summary>
    /// The <paramref name="addresses"/> of one family as elements of its held-address set, in
    /// messages of <paramref name="type"/>: new connections to them are dropped while they are there.
    /// </summary>
    public void HeldAddresses(byte type, string table, ReadOnlySpan<IPAddress> addresses, bool v6, ulong timeoutMilliseconds = 0)
    {
        var list = new ElementList(this, type, table, v6 ? V6HeldSet : V4HeldSet, v6 ? 16 : 4, timeoutMilliseconds);
        Span<byte> key = stackalloc byte[list.KeyLength];
        for (var i = 0; i < addresses.Length; i++)
        {
            if ((addresses[i].AddressFamily == AddressFamily.InterNetworkV6) == v6)
            {
                addresses[i].TryWriteBytes(key, out _);
                list.Add(key, i);
            }
        }

        list.End();
    }

    /// <summary>
    /// One set's element messages as they are written: a new message when the element list
    /// attribute would pass its 16-bit length, and each element's position recorded for the
    /// kernel's error offsets.
    /// </summary>
    private struct ElementList(TupleGuardBatch batch, byte type, string table, string set, int keyLength, ulong timeoutMilliseconds)
    {
        private readonly int _elementLength = 4 + 4 + 4 + keyLength + (timeoutMilliseconds > 0 ? 2 * 12 : 0);
        private int _list = -1;
        private int _listLength;

        public readonly int KeyLength => keyLength;

        public void Add(ReadOnlySpan<byte> key, int index)
        {
            var writer = batch._writer;
            if (_list < 0 || _listLength + _elementLength > ushort.MaxValue)
            {
                End();
                batch.Message(type, type == NfTables.NFT_MSG_NEWSETELEM ? Netlink.NLM_F_CREATE : (ushort)0);
                writer.Attribute(NfTables.NFTA_SET_ELEM_LIST_TABLE, table);
                writer.Attribute(NfTables.NFTA_SET_ELEM_LIST_SET, set);
                _list = writer.BeginNested(NfTables.NFTA_SET_ELEM_LIST_ELEMENTS);
                _listLength = Netlink.AttributeHeaderSize;
            }

            batch._elements.Add(new ElementAt(batch._next - 1, writer.OffsetInMessage, index));
            var before = writer.Length;
            var element = writer.BeginNested(NfTables.NFTA_LIST_ELEM);
            var keyNest = writer.BeginNested(NfTables.NFTA_SET_ELEM_KEY);
            writer.Attribute(NfTables.NFTA_DATA_VALUE, key);
            writer.EndNested(keyNest);
            if (timeoutMilliseconds > 0)
            {
                writer.AttributeBigEndian(NfTables.NFTA_SET_ELEM_TIMEOUT, timeoutMilliseconds);
                writer.AttributeBigEndian(NfTables.NFTA_SET_ELEM_EXPIRATION, timeoutMilliseconds);
            }

            writer.EndNested(element);
            _listLength += writer.Length - before;
        }

        /// <summary>Closes the message being written, if any.</summary>
        public void End()
        {
            if (_list >= 0)
            {
                batch._writer.EndNested(_list);
                batch._writer.EndMessage();
                _list = -1;
            }
        }
    }

    /// <summary>A dump of the table's rules (NFT_MSG_GETRULE with NLM_F_DUMP), alone in the writer: a dump is not part of a batch.</summary>
    public void DumpRules(uint sequence, string table)
    {
        _writer.Clear();
        _elements.Clear();
        _writer.BeginMessage(NfTables.MessageType(NfTables.NFT_MSG_GETRULE), Netlink.NLM_F_REQUEST | Netlink.NLM_F_DUMP, sequence,
            [NfTables.NFPROTO_INET, NfTables.NFNETLINK_V0, 0, 0]);
        _writer.Attribute(NfTables.NFTA_RULE_TABLE, table);
        _writer.EndMessage();
    }

    /// <summary>The element's key: source address, port, destination address, port, each padded to 4 bytes; network byte order.</summary>
    internal static void WriteKey(Span<byte> key, GuardFlow flow)
    {
        key.Clear();
        var addressLength = flow.IsV6 ? 16 : 4;
        flow.Source.TryWriteBytes(key, out _);
        BinaryPrimitives.WriteUInt16BigEndian(key[addressLength..], (ushort)flow.SourcePort);
        flow.Destination.TryWriteBytes(key[(addressLength + 4)..], out _);
        BinaryPrimitives.WriteUInt16BigEndian(key[(2 * addressLength + 4)..], (ushort)flow.DestinationPort);
    }

    private void Message(byte type, ushort flags)
    {
        _writer.BeginMessage(NfTables.MessageType(type), (ushort)(Netlink.NLM_F_REQUEST | Netlink.NLM_F_ACK | flags), _next++,
            [NfTables.NFPROTO_INET, NfTables.NFNETLINK_V0, 0, 0]);
    }

    private void Table(byte type, string table)
    {
        Message(type, 0);
        _writer.Attribute(NfTables.NFTA_TABLE_NAME, table);
        if (type == NfTables.NFT_MSG_NEWTABLE)
        {
            _writer.AttributeBigEndian(NfTables.NFTA_TABLE_FLAGS, 0u);
        }

        _writer.EndMessage();
    }

    /// <summary><c>chain NAME { type filter hook HOOK priority -200; policy accept; }</c></summary>
    private void Chain(string table, string name, uint hook)
    {
        Message(NfTables.NFT_MSG_NEWCHAIN, Netlink.NLM_F_CREATE);
        _writer.Attribute(NfTables.NFTA_CHAIN_TABLE, table);
        _writer.Attribute(NfTables.NFTA_CHAIN_NAME, name);
        _writer.Attribute(NfTables.NFTA_CHAIN_TYPE, "filter");
        _writer.AttributeBigEndian(NfTables.NFTA_CHAIN_POLICY, NfTables.NF_ACCEPT);
        var hookNest = _writer.BeginNested(NfTables.NFTA_CHAIN_HOOK);
        _writer.AttributeBigEndian(NfTables.NFTA_HOOK_HOOKNUM, hook);
        _writer.AttributeBigEndian(NfTables.NFTA_HOOK_PRIORITY, unchecked((uint)Priority));
        _writer.EndNested(hookNest);
        _writer.EndMessage();
    }

    /// <summary>
    /// <c>set NAME { type ADDR . inet_service . ADDR . inet_service; flags timeout; timeout 60s; }</c>,
    /// or for the held addresses <c>type ipv4_addr</c> (<c>ipv6_addr</c>).
    /// </summary>
    private void Set(string table, string name, uint keyType, int keyLength, uint id)
    {
        Message(NfTables.NFT_MSG_NEWSET, Netlink.NLM_F_CREATE);
        _writer.Attribute(NfTables.NFTA_SET_TABLE, table);
        _writer.Attribute(NfTables.NFTA_SET_NAME, name);
        _writer.AttributeBigEndian(NfTables.NFTA_SET_FLAGS, NfTables.NFT_SET_TIMEOUT);
        _writer.AttributeBigEndian(NfTables.NFTA_SET_KEY_TYPE, keyType);
        _writer.AttributeBigEndian(NfTables.NFTA_SET_KEY_LEN, (uint)keyLength);
        _writer.AttributeBigEndian(NfTables.NFTA_SET_ID, id);
        _writer.AttributeBigEndian(NfTables.NFTA_SET_TIMEOUT, SetTimeoutMilliseconds);
        _writer.EndMessage();
    }

    /// <summary>
    /// <c>ip saddr . tcp sport . ip daddr . tcp dport @frz4 counter drop</c> (or its ip6 twin):
    /// match the family and TCP, load the four fields side by side into the registers as the
    /// set's key, look the key up, count and drop.
    /// </summary>
    private void Rule(string table, string chain, bool v6)
    {
        Message(NfTables.NFT_MSG_NEWRULE, Netlink.NLM_F_CREATE | Netlink.NLM_F_APPEND);
        _writer.Attribute(NfTables.NFTA_RULE_TABLE, table);
        _writer.Attribute(NfTables.NFTA_RULE_CHAIN, chain);
        var expressions = _writer.BeginNested(NfTables.NFTA_RULE_EXPRESSIONS);
        Meta(NfTables.NFT_META_NFPROTO);
        CompareEqual(v6 ? NfTables.NFPROTO_IPV6 : NfTables.NFPROTO_IPV4);
        Meta(NfTables.NFT_META_L4PROTO);
        CompareEqual(IPPROTO_TCP);
        // Source and destination address in the IPv4 header at 12 and 16, in the IPv6 one at 8 and 24; TCP's ports at 0 and 2.
        var address = v6 ? 16 : 4;
        Payload(0, NfTables.NFT_PAYLOAD_NETWORK_HEADER, v6 ? 8u : 12u, address);
        Payload(address, NfTables.NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2);
        Payload(address + 4, NfTables.NFT_PAYLOAD_NETWORK_HEADER, v6 ? 24u : 16u, address);
        Payload(2 * address + 4, NfTables.NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);

        LookUpCountAndDrop(v6 ? V6Set : V4Set, v6 ? V6SetId : V4SetId);
        _writer.EndNested(expressions);
        _writer.EndMessage();
    }

    /// <summary>
    /// <c>tcp flags &amp; (fin|syn|rst|ack) == syn ip daddr @hold4 counter drop</c> (or its ip6
    /// twin): a new connection to a held address is dropped, not refused, so its client
    /// sends the SYN again a second later, to whichever node holds the address by then.
    /// </summary>
    private void HeldRule(string table, bool v6)
    {
        Message(NfTables.NFT_MSG_NEWRULE, Netlink.NLM_F_CREATE | Netlink.NLM_F_APPEND);
        _writer.Attribute(NfTables.NFTA_RULE_TABLE, table);
        _writer.Attribute(NfTables.NFTA_RULE_CHAIN, HeldChain);
        var expressions = _writer.BeginNested(NfTables.NFTA_RULE_EXPRESSIONS);
        // nft's order: each match after the one its header depends on.
        Meta(NfTables.NFT_META_L4PROTO);
        CompareEqual(IPPROTO_TCP);
        Payload(0, NfTables.NFT_PAYLOAD_TRANSPORT_HEADER, TcpFlagsOffset, 1);
        var bitwise = Expression("bitwise");
        _writer.AttributeBigEndian(NfTables.NFTA_BITWISE_SREG, NfTables.NFT_REG_1);
        _writer.AttributeBigEndian(NfTables.NFTA_BITWISE_DREG, NfTables.NFT_REG_1);
        _writer.AttributeBigEndian(NfTables.NFTA_BITWISE_OP, NfTables.NFT_BITWISE_BOOL);
        _writer.AttributeBigEndian(NfTables.NFTA_BITWISE_LEN, 1u);
        var mask = _writer.BeginNested(NfTables.NFTA_BITWISE_MASK);
        _writer.Attribute(NfTables.NFTA_DATA_VALUE, [TcpFin | TcpSyn | TcpRst | TcpAck]);
        _writer.EndNested(mask);
        var xor = _writer.BeginNested(NfTables.NFTA_BITWISE_XOR);
        _writer.Attribute(NfTables.NFTA_DATA_VALUE, [0]);
        _writer.EndNested(xor);
        EndExpression(bitwise);
        CompareEqual(TcpSyn);
        Meta(NfTables.NFT_META_NFPROTO);
        CompareEqual(v6 ? NfTables.NFPROTO_IPV6 : NfTables.NFPROTO_IPV4);
        // The destination address: at 16 in the IPv4 header, at 24 in the IPv6 one.
        Payload(0, NfTables.NFT_PAYLOAD_NETWORK_HEADER, v6 ? 24u : 16u, v6 ? 16 : 4);
        LookUpCountAndDrop(v6 ? V6HeldSet : V4HeldSet, v6 ? V6HeldSetId : V4HeldSetId);
        _writer.EndNested(expressions);
        _writer.EndMessage();
    }

    /// <summary><c>@SET counter drop</c>: the key in register 1 looked up in the set; counted and dropped when it is there.</summary>
    private void LookUpCountAndDrop(string set, uint setId)
    {
        var lookup = Expression("lookup");
        _writer.AttributeBigEndian(NfTables.NFTA_LOOKUP_SREG, NfTables.NFT_REG_1);
        _writer.Attribute(NfTables.NFTA_LOOKUP_SET, set);
        _writer.AttributeBigEndian(NfTables.NFTA_LOOKUP_SET_ID, setId);
        EndExpression(lookup);

        EndExpression(Expression("counter"));

        var immediate = Expression("immediate");
        _writer.AttributeBigEndian(NfTables.NFTA_IMMEDIATE_DREG, NfTables.NFT_REG_VERDICT);
        var data = _writer.BeginNested(NfTables.NFTA_IMMEDIATE_DATA);
        var verdict = _writer.BeginNested(NfTables.NFTA_DATA_VERDICT);
        _writer.AttributeBigEndian(NfTables.NFTA_VERDICT_CODE, NfTables.NF_DROP);
        _writer.EndNested(verdict);
        _writer.EndNested(data);
        EndExpression(immediate);
    }

    private void Meta(uint key)
    {
        var meta = Expression("meta");
        _writer.AttributeBigEndian(NfTables.NFTA_META_KEY, key);
        _writer.AttributeBigEndian(NfTables.NFTA_META_DREG, NfTables.NFT_REG_1);
        EndExpression(meta);
    }

    private void CompareEqual(byte value)
    {
        var cmp = Expression("cmp");
        _writer.AttributeBigEndian(NfTables.NFTA_CMP_SREG, NfTables.NFT_REG_1);
        _writer.AttributeBigEndian(NfTables.NFTA_CMP_OP, NfTables.NFT_CMP_EQ);
        var data = _writer.BeginNested(NfTables.NFTA_CMP_DATA);
        _writer.Attribute(NfTables.NFTA_DATA_VALUE, [value]);
        _writer.EndNested(data);
        EndExpression(cmp);
    }

    /// <summary>Loads <paramref name="length"/> bytes at <paramref name="offset"/> of a header into the key, at byte <paramref name="keyOffset"/>.</summary>
    private void Payload(int keyOffset, uint header, uint offset, int length)
    {
        var payload = Expression("payload");
        _writer.AttributeBigEndian(NfTables.NFTA_PAYLOAD_DREG, Register(keyOffset));
        _writer.AttributeBigEndian(NfTables.NFTA_PAYLOAD_BASE, header);
        _writer.AttributeBigEndian(NfTables.NFTA_PAYLOAD_OFFSET, offset);
        _writer.AttributeBigEndian(NfTables.NFTA_PAYLOAD_LEN, (uint)length);
        EndExpression(payload);
    }

    /// <summary>
    /// The register that holds byte <paramref name="keyOffset"/> of a key that starts in
    /// register 1: the 16-byte register when the offset starts one (as nft numbers it), the
    /// 4-byte register that overlays it otherwise.
    /// </summary>
    private static uint Register(int keyOffset) =>
        keyOffset % 16 == 0 ? NfTables.NFT_REG_1 + (uint)(keyOffset / 16) : NfTables.NFT_REG32_00 + (uint)(keyOffset / 4);

    /// <summary>Starts NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { ... } }; the expression's attributes follow.</summary>
    private (int Element, int Data) Expression(string name)
    {
        var element = _writer.BeginNested(NfTables.NFTA_LIST_ELEM);
        _writer.Attribute(NfTables.NFTA_EXPR_NAME, name);
        return (element, _writer.BeginNested(NfTables.NFTA_EXPR_DATA));
    }

    private void EndExpression((int Element, int Data) expression)
    {
        _writer.EndNested(expression.Data);
        _writer.EndNested(expression.Element);
    }
}
