using System.Buffers.Binary;
using System.Net;
using System.Runtime.InteropServices;
using Relay.Actors.Handover;
using Relay.Actors.Native;

namespace Relay.Tests.Handover;

/// <summary>
/// The tuple guard's nf_tables messages byte for byte. The expected batch is what nft 1.0.6 sent
/// for the ruleset below (table "g"), captured with <c>strace -e trace=sendmsg -e write=3 nft -f</c>.
/// </summary>
public sealed class TupleGuardBatchTests
{
    // table inet g
    // delete table inet g
    // table inet g {
    //   set frz4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags timeout; timeout 60s; }
    //   set frz6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; flags timeout; timeout 60s; }
    //   chain in  { type filter hook input  priority -200; policy accept;
    //               ip saddr . tcp sport . ip daddr . tcp dport @frz4 counter drop
    //               ip6 saddr . tcp sport . ip6 daddr . tcp dport @frz6 counter drop; }
    //   chain out { type filter hook output priority -200; policy accept; (the same two rules) }
    // }
    private const string NftBatch = """
        140000001000010000000000000000000000000a24000000000a0100010000000000000001000000060001006700000008000200000000001c000000020a0100
        020000000000000001000000060001006700000024000000000a0100030000000000000001000000060001006700000008000200000000004c000000030a0104
        040000000000000001000000060001006700000007000300696e00000b00070066696c7465720000080005000000000114000480080001000000000108000200
        ffffff384c000000030a01040500000000000000010000000600010067000000080003006f7574000b00070066696c7465720000080005000000000114000480
        080001000000000308000200ffffff3868000000090a010406000000000000000100000006000100670000000900020066727a34000000000800030000000010
        08000400001cd1cd080005000000001008000a00000000010c000b00000000000000ea6014000d00000400000000030800040d000000010068000000090a0104
        07000000000000000100000006000100670000000900020066727a36000000000800030000000010080004000020d20d080005000000002808000a0000000002
        0c000b00000000000000ea6014000d00000400000000030800040d00000001000c020000060a010c080000000000000001000000060001006700000007000200
        696e0000e801048024000180090001006d6574610000000014000280080002000000000f08000100000000012c00018008000100636d70002000028008000100
        0000000108000200000000000c000380050001000200000024000180090001006d6574610000000014000280080002000000001008000100000000012c000180
        08000100636d700020000280080001000000000108000200000000000c0003800500010006000000340001800c0001007061796c6f6164002400028008000100
        000000010800020000000001080003000000000c0800040000000004340001800c0001007061796c6f6164002400028008000100000000090800020000000002
        08000300000000000800040000000002340001800c0001007061796c6f61640024000280080001000000000a0800020000000001080003000000001008000400
        00000004340001800c0001007061796c6f61640024000280080001000000000b080002000000000208000300000000020800040000000002300001800b000100
        6c6f6f6b757000002000028008000200000000010900010066727a34000000000800040000000001140001800c000100636f756e746572000400028030000180
        0e000100696d6d6564696174650000001c0002800800010000000000100002800c00028008000100000000000c020000060a010c090000000000000001000000
        060001006700000007000200696e0000e801048024000180090001006d6574610000000014000280080002000000000f08000100000000012c00018008000100
        636d700020000280080001000000000108000200000000000c000380050001000a00000024000180090001006d65746100000000140002800800020000000010
        08000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010006000000340001800c0001007061796c
        6f616400240002800800010000000001080002000000000108000300000000080800040000000010340001800c0001007061796c6f6164002400028008000100
        00000002080002000000000208000300000000000800040000000002340001800c0001007061796c6f61640024000280080001000000000d0800020000000001
        08000300000000180800040000000010340001800c0001007061796c6f6164002400028008000100000000110800020000000002080003000000000208000400
        00000002300001800b0001006c6f6f6b757000002000028008000200000000010900010066727a36000000000800040000000002140001800c000100636f756e
        7465720004000280300001800e000100696d6d6564696174650000001c0002800800010000000000100002800c00028008000100000000000c020000060a010c
        0a00000000000000010000000600010067000000080002006f757400e801048024000180090001006d6574610000000014000280080002000000000f08000100
        000000012c00018008000100636d700020000280080001000000000108000200000000000c000380050001000200000024000180090001006d65746100000000
        14000280080002000000001008000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010006000000
        340001800c0001007061796c6f6164002400028008000100000000010800020000000001080003000000000c0800040000000004340001800c0001007061796c
        6f616400240002800800010000000009080002000000000208000300000000000800040000000002340001800c0001007061796c6f6164002400028008000100
        0000000a080002000000000108000300000000100800040000000004340001800c0001007061796c6f61640024000280080001000000000b0800020000000002
        08000300000000020800040000000002300001800b0001006c6f6f6b757000002000028008000200000000010900010066727a34000000000800040000000001
        140001800c000100636f756e7465720004000280300001800e000100696d6d6564696174650000001c0002800800010000000000100002800c00028008000100
        000000000c020000060a010c0b00000000000000010000000600010067000000080002006f757400e801048024000180090001006d6574610000000014000280
        080002000000000f08000100000000012c00018008000100636d700020000280080001000000000108000200000000000c000380050001000a00000024000180
        090001006d6574610000000014000280080002000000001008000100000000012c00018008000100636d70002000028008000100000000010800020000000000
        0c0003800500010006000000340001800c0001007061796c6f616400240002800800010000000001080002000000000108000300000000080800040000000010
        340001800c0001007061796c6f616400240002800800010000000002080002000000000208000300000000000800040000000002340001800c0001007061796c
        6f61640024000280080001000000000d080002000000000108000300000000180800040000000010340001800c0001007061796c6f6164002400028008000100
        00000011080002000000000208000300000000020800040000000002300001800b0001006c6f6f6b757000002000028008000200000000010900010066727a36
        000000000800040000000002140001800c000100636f756e7465720004000280300001800e000100696d6d6564696174650000001c0002800800010000000000
        100002800c000280080001000000000014000000110001000c000000000000000000000a
        """;

    private const ushort NFTA_SET_USERDATA = 13;

    [Fact]
    public void The_table_is_what_nft_sends_for_the_same_ruleset_with_an_ack_asked_for_each_message()
    {
        var batch = new TupleGuardBatch();
        batch.Begin(0);
        batch.CreateTable("g");
        batch.End();

        var ours = Messages(batch.Bytes);
        var nfts = Messages(Convert.FromHexString(string.Concat(NftBatch.Split('\n', StringSplitOptions.TrimEntries))));
        Assert.Equal(nfts.Count, ours.Count);
        Assert.Equal(11, batch.MessageCount);
        for (var i = 0; i < nfts.Count; i++)
        {
            var (nft, our) = (nfts[i], ours[i]);
            Assert.Equal(nft.Header.Type, our.Header.Type);
            Assert.Equal(nft.Header.Sequence, our.Header.Sequence);
            var batchControl = i == 0 || i == nfts.Count - 1;
            Assert.Equal(nft.Header.Flags | (batchControl ? 0 : Netlink.NLM_F_ACK), our.Header.Flags);
            // nft adds its own notes on how to print a set's key (NFTA_SET_USERDATA) last: the kernel keeps them unread.
            var expected = nft.Header.Type == NfTables.MessageType(NfTables.NFT_MSG_NEWSET) ? WithoutLast(nft.Body, NFTA_SET_USERDATA) : nft.Body;
            Assert.Equal(Convert.ToHexStringLower(expected), Convert.ToHexStringLower(our.Body));
        }
    }

    [Fact]
    public void Concatenated_key_types_are_nfts()
    {
        Assert.Equal(0x001cd1cdu, TupleGuardBatch.KeyType(v6: false));
        Assert.Equal(0x0020d20du, TupleGuardBatch.KeyType(v6: true));
    }

    [Fact]
    public void An_elements_key_is_what_nft_sends_for_the_same_element()
    {
        // add element inet g frz4 { 198.18.0.1 . 1000 . 198.18.0.2 . 2000 }, and the frz6 one: NFTA_DATA_VALUE as nft sent it.
        Span<byte> key = stackalloc byte[TupleGuardBatch.V6KeyLength];
        TupleGuardBatch.WriteKey(key, new GuardFlow(IPAddress.Parse("198.18.0.1"), 1000, IPAddress.Parse("198.18.0.2"), 2000));
        Assert.Equal("c612000103e80000c612000207d00000", Convert.ToHexStringLower(key[..TupleGuardBatch.V4KeyLength]));
        TupleGuardBatch.WriteKey(key, new GuardFlow(IPAddress.Parse("2001:2::1"), 1000, IPAddress.Parse("2001:2::2"), 2000));
        Assert.Equal("2001000200000000000000000000000103e800002001000200000000000000000000000207d00000", Convert.ToHexStringLower(key));
    }

    [Fact]
    public void An_added_element_carries_its_timeout_and_expiration_in_milliseconds()
    {
        var batch = new TupleGuardBatch();
        batch.Begin(7);
        batch.Elements(NfTables.NFT_MSG_NEWSETELEM, "g", [new GuardFlow(IPAddress.Parse("198.18.0.1"), 1000, IPAddress.Parse("198.18.0.2"), 2000)], v6: false, 1500);
        batch.End();

        var message = Messages(batch.Bytes)[1];
        Assert.Equal(NfTables.MessageType(NfTables.NFT_MSG_NEWSETELEM), message.Header.Type);
        Assert.Equal(Netlink.NLM_F_REQUEST | Netlink.NLM_F_ACK | Netlink.NLM_F_CREATE, message.Header.Flags);
        // nfgenmsg inet; table "g"; set "frz4"; elements { { key { value }, timeout 1500, expiration 1500 } }
        Assert.Equal("01000000" + "0600010067000000" + "0900020066727a3400000000"
            + "38000380" + "34000180" + "18000180" + "14000100c612000103e80000c612000207d00000"
            + "0c000400" + "00000000000005dc" + "0c000500" + "00000000000005dc",
            Convert.ToHexStringLower(message.Body));
    }

    [Fact]
    public void Thousands_of_elements_go_in_several_messages_of_one_batch_each_list_under_64_KiB()
    {
        var flows = new GuardFlow[10_000];
        for (var i = 0; i < flows.Length; i++)
        {
            var v6 = i % 2 == 1;
            flows[i] = new GuardFlow(IPAddress.Parse(v6 ? "2001:2::1" : "198.18.0.1"), 10_000 + i, IPAddress.Parse(v6 ? "2001:2::2" : "198.18.0.2"), 443);
        }

        var batch = new TupleGuardBatch();
        batch.Begin(100);
        batch.Elements(NfTables.NFT_MSG_NEWSETELEM, "relay_handover", flows, v6: false, 60_000);
        batch.Elements(NfTables.NFT_MSG_NEWSETELEM, "relay_handover", flows, v6: true, 60_000);
        batch.End();

        var messages = Messages(batch.Bytes);
        Assert.Equal(batch.MessageCount + 2, messages.Count);
        Assert.InRange(batch.MessageCount, 8, 20);
        Assert.Equal(flows.Length, batch.ElementPositions.Count);
        Span<byte> key = stackalloc byte[TupleGuardBatch.V6KeyLength];
        var seen = new bool[flows.Length];
        foreach (var (sequence, offset, flow) in batch.ElementPositions)
        {
            // Each recorded position is an NFTA_LIST_ELEM of that message whose key is that flow's.
            var message = messages.Single(m => m.Header.Sequence == sequence);
            var whole = message.Whole;
            Assert.Equal(NfTables.NFTA_LIST_ELEM | Netlink.NLA_F_NESTED, BinaryPrimitives.ReadUInt16LittleEndian(whole[(offset + 2)..]));
            var length = flows[flow].IsV6 ? TupleGuardBatch.V6KeyLength : TupleGuardBatch.V4KeyLength;
            TupleGuardBatch.WriteKey(key, flows[flow]);
            Assert.True(whole.AsSpan(offset + 12, length).SequenceEqual(key[..length]), $"element {flow} is not at {sequence}/{offset}");
            seen[flow] = true;
        }

        Assert.All(seen, Assert.True);
        foreach (var message in messages.Skip(1).SkipLast(1))
        {
            var list = Netlink.Attributes(message.Body.AsSpan(NfTables.GenMsgSize)).Single(a => a.Type == NfTables.NFTA_SET_ELEM_LIST_ELEMENTS);
            Assert.InRange(list.Value.Length + Netlink.AttributeHeaderSize, 1, ushort.MaxValue);
        }
    }

    private sealed record Message(Netlink.MessageHeader Header, byte[] Body, byte[] Whole);

    private static List<Message> Messages(ReadOnlySpan<byte> batch)
    {
        var messages = new List<Message>();
        while (batch.Length >= Netlink.HeaderSize)
        {
            var header = MemoryMarshal.Read<Netlink.MessageHeader>(batch);
            Assert.InRange((int)header.Length, Netlink.HeaderSize, batch.Length);
            messages.Add(new Message(header, batch[Netlink.HeaderSize..(int)header.Length].ToArray(), batch[..(int)header.Length].ToArray()));
            batch = batch[Math.Min(Netlink.Align((int)header.Length), batch.Length)..];
        }

        Assert.True(batch.IsEmpty, "bytes after the last message");
        return messages;
    }

    /// <summary>The message body without its last attribute, which must be of <paramref name="type"/>.</summary>
    private static byte[] WithoutLast(byte[] body, ushort type)
    {
        var offset = NfTables.GenMsgSize;
        var last = -1;
        while (offset < body.Length)
        {
            last = offset;
            offset += Netlink.Align(BinaryPrimitives.ReadUInt16LittleEndian(body.AsSpan(offset)));
        }

        Assert.Equal(type, BinaryPrimitives.ReadUInt16LittleEndian(body.AsSpan(last + 2)));
        return body[..last];
    }
}
