using Relay.Actors.Circuits;
using Relay.Actors.Cluster;

namespace Relay.Host.Management;

/// <summary>
/// <c>GET /cluster/members</c>: Akka Management's <c>ClusterMembers</c> shape, so its tools
/// and scripts read it unchanged.
/// </summary>
public sealed record ClusterMembersResponse(
    string SelfNode,
    IReadOnlyList<ClusterMemberView> Members,
    IReadOnlyList<ClusterUnreachableMemberView> Unreachable,
    string? Leader,
    string? Oldest,
    IReadOnlyDictionary<string, string> OldestPerRole);

/// <summary>One member, as Akka Management's <c>ClusterMember</c>: status is Akka's name (<c>Up</c>, <c>Leaving</c>, ...).</summary>
public sealed record ClusterMemberView(string Node, string NodeUid, string Status, IReadOnlyList<string> Roles);

/// <summary>An unreachable member and the members that observed it so.</summary>
public sealed record ClusterUnreachableMemberView(string Node, IReadOnlyList<string> ObservedBy);

/// <summary>Akka Management's <c>ClusterHttpManagementMessage</c>: <c>{"message":"Downing ..."}</c>.</summary>
public sealed record ClusterHttpMessage(string Message);

/// <summary>Cluster-wide rows for <c>GET /circuits</c>: other nodes' circuits and lost ones.</summary>
internal static class ClusterCircuitViews
{
    public static IEnumerable<CircuitView> Of(ClusterCircuitTable table) =>
        table.Remote().Concat(table.Lost()).Select(row => From(row.Node, row.Circuit));

    private static CircuitView From(string node, CircuitRecord c) => new(
        c.Id,
        c.Route,
        node,
        c.Client,
        c.Upstream,
        c.State.ToWireName(),
        c.BytesUp,
        c.BytesDown,
        DateTimeOffset.FromUnixTimeMilliseconds(c.OpenedAtMs).UtcDateTime,
        DateTimeOffset.FromUnixTimeMilliseconds(c.LastActivityMs).UtcDateTime);
}
