using System.Text;
using Akka.Cluster;
using Relay.Actors;

namespace Relay.Host.Management;

/// <summary>
/// The cluster's lines of <c>GET /metrics</c>: <c>relay_service_owner</c> and
/// <c>relay_cluster_members{status}</c>, only on a clustered node. An unclustered node has
/// no service to own or hand over, so it exports neither.
/// </summary>
internal static class ClusterMetrics
{
    private static readonly string[] Statuses = ["joining", "weakly_up", "up", "leaving", "exiting", "down", "unreachable"];

    public static void Render(StringBuilder text, RelayNode node)
    {
        if (node.Cluster is not { } cluster)
        {
            return;
        }

        MetricsRoutes.Family(text, "relay_service_owner", "gauge",
            "Whether this node owns the service (binds the routes, holds the VIP): 1 or 0.");
        MetricsRoutes.Sample(text, "relay_service_owner", cluster.Service.IsOwner ? 1 : 0);

        var state = cluster.Cluster.State;
        var counts = Statuses.ToDictionary(s => s, _ => 0);
        foreach (var member in state.Members)
        {
            counts[Name(member.Status)]++;
        }

        counts["unreachable"] = state.Unreachable.Count;
        MetricsRoutes.Family(text, "relay_cluster_members", "gauge",
            "Cluster members as this node sees them, by status (unreachable counts them again).");
        foreach (var status in Statuses)
        {
            MetricsRoutes.Sample(text, "relay_cluster_members", counts[status], ("status", status));
        }
    }

    private static string Name(MemberStatus status) => status switch
    {
        MemberStatus.Joining => "joining",
        MemberStatus.WeaklyUp => "weakly_up",
        MemberStatus.Up => "up",
        MemberStatus.Leaving => "leaving",
        MemberStatus.Exiting => "exiting",
        _ => "down", // Down and Removed: on their way out
    };
}
