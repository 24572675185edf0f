using Relay.Actors.Transparent;

namespace Relay.Actors.Configuration;

/// <summary>
/// How a transparent route learns each connection's original destination, which depends on
/// how the packets were intercepted (the rules in <c>ops/gateway/</c>).
/// </summary>
public enum Interception
{
    /// <summary>
    /// nftables/iptables <c>redirect</c> (or DNAT): the kernel rewrote the destination to the
    /// listener, and <c>SO_ORIGINAL_DST</c> reads the original back from conntrack.
    /// </summary>
    Redirect,

    /// <summary>
    /// nftables/iptables <c>tproxy</c>: the packet was delivered unchanged to a listener with
    /// <c>IP_TRANSPARENT</c>, so the accepted socket's own local address is the destination.
    /// </summary>
    Tproxy,
}

/// <summary>The source address of a transparent route's upstream connection.</summary>
public enum UpstreamSource
{
    /// <summary>The relay's own address, chosen by routing (the default).</summary>
    Relay,

    /// <summary>
    /// The client's address (<c>IP_TRANSPARENT</c> and bind before connect), so the server
    /// sees the real client, as HAProxy's <c>usesrc clientip</c> does. Needs the routing that
    /// <c>ops/gateway/gateway.sh --mode tproxy</c> sets up.
    /// </summary>
    Client,
}

/// <summary>
/// What makes a route transparent (<c>mode = transparent</c>): each circuit connects to its
/// connection's original destination instead of a configured upstream.
/// </summary>
public sealed record TransparentSettings(Interception Interception, UpstreamSource UpstreamSource, DestinationPolicy Destinations)
{
    /// <summary>
    /// The <see cref="RouteSettings.Upstream"/> of a transparent route: there is no configured
    /// upstream, and this is what logs, <c>GET /routes</c> and the circuit table show until the
    /// circuit knows its destination.
    /// </summary>
    public static readonly UpstreamAddress OriginalDestination = new("original-destination", 0);

    public static string Name(Interception value) => value == Interception.Tproxy ? "tproxy" : "redirect";

    public static string Name(UpstreamSource value) => value == UpstreamSource.Client ? "client" : "relay";
}
