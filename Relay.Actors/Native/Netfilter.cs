namespace Relay.Actors.Native;

/// <summary>
/// INTERNAL API. &lt;linux/netfilter_ipv4.h&gt; and &lt;linux/netfilter_ipv6/ip6_tables.h&gt;:
/// the destination conntrack remembers for a REDIRECTed or DNATed connection, read with
/// getsockopt at level <see cref="Inet.SOL_IP"/> or <see cref="Inet.SOL_IPV6"/>.
/// </summary>
internal static class Netfilter
{
    public const int SO_ORIGINAL_DST = 80;
    public const int IP6T_SO_ORIGINAL_DST = 80;
}
