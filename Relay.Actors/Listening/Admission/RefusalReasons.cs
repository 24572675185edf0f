namespace Relay.Actors.Listening.Admission;

/// <summary>
/// Why a connection was refused before it became a circuit. These strings are the
/// <c>Reason</c> of the <c>ClientRefused</c> event and the <c>reason</c> label of
/// <c>relay_connections_refused_total</c>: stable, like <c>CloseReasons</c>.
/// </summary>
public static class RefusalReasons
{
    /// <summary>The client's address is in the route's deny list.</summary>
    public const string Denied = "denied";

    /// <summary>The route has an allow list and the client's address is not in it.</summary>
    public const string NotAllowed = "not-allowed";

    public const string MaxCircuits = "max-circuits";
    public const string MaxCircuitsPerSource = "max-circuits-per-source";
    public const string AcceptRate = "accept-rate";

    /// <summary>The node-wide limits of <c>relay.limits</c>.</summary>
    public const string NodeMaxCircuits = "node-max-circuits";
    public const string NodeMaxCircuitsPerSource = "node-max-circuits-per-source";
    public const string NodeAcceptRate = "node-accept-rate";

    /// <summary>An accept-proxy-protocol route got a malformed header, or none in time.</summary>
    public const string ProxyHeader = "proxy-header";

    /// <summary>Every reason, in the order the metrics list them.</summary>
    public static readonly IReadOnlyList<string> All =
    [
        Denied, NotAllowed, MaxCircuits, MaxCircuitsPerSource, AcceptRate,
        NodeMaxCircuits, NodeMaxCircuitsPerSource, NodeAcceptRate, ProxyHeader,
    ];
}
