using System.Text;
using Relay.Actors.Upstreams;

namespace Relay.Host.Management;

/// <summary>
/// The per-member families of <c>GET /metrics</c>. Read from the pools at scrape time; a
/// route's pool is made anew when a reload changes the route, so its failure counter then
/// starts from 0 again (Prometheus' rate() treats that as a counter reset).
/// </summary>
internal static class UpstreamMetrics
{
    public static void Render(StringBuilder text, UpstreamPools pools)
    {
        var all = pools.All();
        MetricsRoutes.Family(text, "relay_upstream_up", "gauge", "1 while the pool member is up (not ejected by connect failures, not failing health checks).");
        foreach (var pool in all)
        {
            foreach (var member in pool.Members)
            {
                MetricsRoutes.Sample(text, "relay_upstream_up", member.IsUp ? 1 : 0, ("route", pool.Route), ("upstream", member.Address.ToString()));
            }
        }

        MetricsRoutes.Family(text, "relay_upstream_circuits_active", "gauge", "Circuits open or connecting to the pool member now.");
        foreach (var pool in all)
        {
            foreach (var member in pool.Members)
            {
                MetricsRoutes.Sample(text, "relay_upstream_circuits_active", member.Active, ("route", pool.Route), ("upstream", member.Address.ToString()));
            }
        }

        MetricsRoutes.Family(text, "relay_upstream_connect_failures_total", "counter", "Failed connects to the pool member (refused, unreachable, timed out, DNS).");
        foreach (var pool in all)
        {
            foreach (var member in pool.Members)
            {
                MetricsRoutes.Sample(text, "relay_upstream_connect_failures_total", member.ConnectFailures,
                    ("route", pool.Route), ("upstream", member.Address.ToString()));
            }
        }
    }
}
