namespace Relay.Actors.Native;

/// <summary>
/// INTERNAL API. &lt;netinet/in.h&gt; (with the Linux options of linux/in.h and
/// linux/in6.h): the IP-level socket option levels and names.
/// </summary>
internal static class Inet
{
    public const int SOL_IP = 0;
    public const int IPPROTO_TCP = 6;
    public const int SOL_IPV6 = 41;
    /// <summary>A raw socket that sends whole IP packets, header included (IP_HDRINCL implied, IPv4 and IPv6).</summary>
    public const int IPPROTO_RAW = 255;

    public const int IP_FREEBIND = 15;
    public const int IP_TRANSPARENT = 19;
    public const int IP_BIND_ADDRESS_NO_PORT = 24;
    public const int IPV6_TRANSPARENT = 75;
    public const int IPV6_FREEBIND = 78;
}
