using System.Text;
using Akka.Cluster;
using Relay.Actors;
using Relay.Actors.Metrics;

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

        var handovers = node.Metrics.Handovers;
        MetricsRoutes.Family(text, "relay_handovers_total", "counter",
            "Handovers this node started, by result: completed, rolled-back (every circuit went on here), failed (nothing was frozen).");
        foreach (var result in HandoverMetrics.Results)
        {
            MetricsRoutes.Sample(text, "relay_handovers_total", handovers.Count(result), ("result", result));
        }

        MetricsRoutes.Family(text, "relay_handover_pause_seconds", "histogram",
            "How long the moved circuits stood still in each completed handover: from the first freeze to the target's commit.");
        var buckets = handovers.CumulativePauseBuckets();
        for (var i = 0; i < HandoverMetrics.PauseBuckets.Count; i++)
        {
            MetricsRoutes.Sample(text, "relay_handover_pause_seconds_bucket", buckets[i],
                ("le", HandoverMetrics.PauseBuckets[i].ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        MetricsRoutes.Sample(text, "relay_handover_pause_seconds_bucket", buckets[^1], ("le", "+Inf"));
        MetricsRoutes.Sample(text, "relay_handover_pause_seconds_sum", handovers.PauseSumSeconds);
        MetricsRoutes.Sample(text, "relay_handover_pause_seconds_count", buckets[^1]);

        MetricsRoutes.Family(text, "relay_circuits_handed_over_total", "counter", "Circuits this node handed to another node, each still running there.");
        MetricsRoutes.Sample(text, "relay_circuits_handed_over_total", handovers.CircuitsHandedOver);
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
