namespace Relay.Actors.Native;

/// <summary>
/// INTERNAL API. &lt;linux/netfilter/nfnetlink.h&gt;, &lt;linux/netfilter/nf_tables.h&gt; and
/// the few values of &lt;linux/netfilter.h&gt; they use: nf_tables over a NETLINK_NETFILTER
/// socket, what <c>nft</c> sends through libnftnl. A message's type is the subsystem in the high
/// byte and the nf_tables message in the low one; it carries an nfgenmsg (family, version,
/// res_id) after the header. Changes go in a batch (one transaction, all or nothing) between
/// NFNL_MSG_BATCH_BEGIN and NFNL_MSG_BATCH_END. Attribute values are in network byte order.
/// </summary>
internal static class NfTables
{
    // nfnetlink.h
    public const byte NFNL_SUBSYS_NFTABLES = 10;
    public const ushort NFNL_MSG_BATCH_BEGIN = Netlink.NLMSG_MIN_TYPE;
    public const ushort NFNL_MSG_BATCH_END = Netlink.NLMSG_MIN_TYPE + 1;
    public const byte NFNETLINK_V0 = 0;
    /// <summary>sizeof(struct nfgenmsg).</summary>
    public const int GenMsgSize = 4;

    // netfilter.h
    public const byte NFPROTO_INET = 1;
    public const byte NFPROTO_IPV4 = 2;
    public const byte NFPROTO_IPV6 = 10;
    public const uint NF_DROP = 0;
    public const uint NF_ACCEPT = 1;
    public const uint NF_INET_LOCAL_IN = 1;
    public const uint NF_INET_LOCAL_OUT = 3;

    // enum nf_tables_msg_types
    public const byte NFT_MSG_NEWTABLE = 0;
    public const byte NFT_MSG_DELTABLE = 2;
    public const byte NFT_MSG_NEWCHAIN = 3;
    public const byte NFT_MSG_NEWRULE = 6;
    public const byte NFT_MSG_GETRULE = 7;
    public const byte NFT_MSG_NEWSET = 9;
    public const byte NFT_MSG_NEWSETELEM = 12;
    public const byte NFT_MSG_DELSETELEM = 14;
    /// <summary>DELTABLE that is not an error when the table is not there (Linux 6.3).</summary>
    public const byte NFT_MSG_DESTROYTABLE = 26;
    /// <summary>DELSETELEM that skips an element that is not there, or has expired (Linux 6.3).</summary>
    public const byte NFT_MSG_DESTROYSETELEM = 30;

    // enum nft_list_attributes
    public const ushort NFTA_LIST_ELEM = 1;

    // enum nft_hook_attributes
    public const ushort NFTA_HOOK_HOOKNUM = 1;
    public const ushort NFTA_HOOK_PRIORITY = 2;

    // enum nft_table_attributes
    public const ushort NFTA_TABLE_NAME = 1;
    public const ushort NFTA_TABLE_FLAGS = 2;

    // enum nft_chain_attributes
    public const ushort NFTA_CHAIN_TABLE = 1;
    public const ushort NFTA_CHAIN_NAME = 3;
    public const ushort NFTA_CHAIN_HOOK = 4;
    public const ushort NFTA_CHAIN_POLICY = 5;
    public const ushort NFTA_CHAIN_TYPE = 7;

    // enum nft_rule_attributes
    public const ushort NFTA_RULE_TABLE = 1;
    public const ushort NFTA_RULE_CHAIN = 2;
    public const ushort NFTA_RULE_EXPRESSIONS = 4;

    // enum nft_set_flags
    public const uint NFT_SET_TIMEOUT = 0x10;

    // enum nft_set_attributes
    public const ushort NFTA_SET_TABLE = 1;
    public const ushort NFTA_SET_NAME = 2;
    public const ushort NFTA_SET_FLAGS = 3;
    public const ushort NFTA_SET_KEY_TYPE = 4;
    public const ushort NFTA_SET_KEY_LEN = 5;
    public const ushort NFTA_SET_ID = 10;
    public const ushort NFTA_SET_TIMEOUT = 11;

    // enum nft_set_elem_attributes
    public const ushort NFTA_SET_ELEM_KEY = 1;
    public const ushort NFTA_SET_ELEM_TIMEOUT = 4;
    public const ushort NFTA_SET_ELEM_EXPIRATION = 5;

    // enum nft_set_elem_list_attributes
    public const ushort NFTA_SET_ELEM_LIST_TABLE = 1;
    public const ushort NFTA_SET_ELEM_LIST_SET = 2;
    public const ushort NFTA_SET_ELEM_LIST_ELEMENTS = 3;

    // enum nft_expression_attributes
    public const ushort NFTA_EXPR_NAME = 1;
    public const ushort NFTA_EXPR_DATA = 2;

    // enum nft_data_attributes and enum nft_verdict_attributes
    public const ushort NFTA_DATA_VALUE = 1;
    public const ushort NFTA_DATA_VERDICT = 2;
    public const ushort NFTA_VERDICT_CODE = 1;

    // enum nft_registers: the verdict, the 16-byte registers, and the 4-byte ones that overlay them from 8.
    public const uint NFT_REG_VERDICT = 0;
    public const uint NFT_REG_1 = 1;
    public const uint NFT_REG_2 = 2;
    public const uint NFT_REG32_00 = 8;

    // enum nft_meta_attributes and enum nft_meta_keys
    public const ushort NFTA_META_DREG = 1;
    public const ushort NFTA_META_KEY = 2;
    public const uint NFT_META_NFPROTO = 15;
    public const uint NFT_META_L4PROTO = 16;

    // enum nft_cmp_attributes and enum nft_cmp_ops
    public const ushort NFTA_CMP_SREG = 1;
    public const ushort NFTA_CMP_OP = 2;
    public const ushort NFTA_CMP_DATA = 3;
    public const uint NFT_CMP_EQ = 0;

    // enum nft_payload_attributes and enum nft_payload_bases
    public const ushort NFTA_PAYLOAD_DREG = 1;
    public const ushort NFTA_PAYLOAD_BASE = 2;
    public const ushort NFTA_PAYLOAD_OFFSET = 3;
    public const ushort NFTA_PAYLOAD_LEN = 4;
    public const uint NFT_PAYLOAD_NETWORK_HEADER = 1;
    public const uint NFT_PAYLOAD_TRANSPORT_HEADER = 2;

    // enum nft_bitwise_attributes and enum nft_bitwise_ops
    public const ushort NFTA_BITWISE_SREG = 1;
    public const ushort NFTA_BITWISE_DREG = 2;
    public const ushort NFTA_BITWISE_LEN = 3;
    public const ushort NFTA_BITWISE_MASK = 4;
    public const ushort NFTA_BITWISE_XOR = 5;
    public const ushort NFTA_BITWISE_OP = 6;
    public const uint NFT_BITWISE_BOOL = 0;

    // enum nft_lookup_attributes
    public const ushort NFTA_LOOKUP_SET = 1;
    public const ushort NFTA_LOOKUP_SREG = 2;
    public const ushort NFTA_LOOKUP_SET_ID = 4;

    // enum nft_counter_attributes
    public const ushort NFTA_COUNTER_BYTES = 1;
    public const ushort NFTA_COUNTER_PACKETS = 2;

    // enum nft_immediate_attributes
    public const ushort NFTA_IMMEDIATE_DREG = 1;
    public const ushort NFTA_IMMEDIATE_DATA = 2;

    /// <summary>The netlink message type of nf_tables message <paramref name="message"/>.</summary>
    public static ushort MessageType(byte message) => (ushort)((NFNL_SUBSYS_NFTABLES << 8) | message);
}
