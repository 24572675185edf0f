using System.Globalization;
using System.Text;

namespace Relay.Host.Management;

/// <summary>
/// The .NET runtime's own counters in <c>GET /metrics</c>, under the names prometheus-net
/// uses (<c>dotnet_*</c>) so existing dashboards find them. They answer the operator's
/// "is the relay garbage-collecting itself to death?": a busy relay allocates per circuit,
/// and on a host whose cache size the runtime cannot read (many VMs) the default gen0
/// budget is small enough to collect tens of times a second (see <c>relay.gc</c> in
/// docs/OPERATIONS.md).
/// </summary>
internal static class RuntimeMetrics
{
    public static void Render(StringBuilder text)
    {
        MetricsRoutes.Family(text, "dotnet_collection_count_total", "counter", "Garbage collections since the process started, by generation.");
        for (var generation = 0; generation <= GC.MaxGeneration; generation++)
        {
            MetricsRoutes.Sample(text, "dotnet_collection_count_total", GC.CollectionCount(generation),
                ("generation", generation.ToString(CultureInfo.InvariantCulture)));
        }

        MetricsRoutes.Family(text, "dotnet_gc_allocated_bytes_total", "counter", "Bytes allocated on the managed heap since the process started.");
        MetricsRoutes.Sample(text, "dotnet_gc_allocated_bytes_total", GC.GetTotalAllocatedBytes(precise: false));

        MetricsRoutes.Family(text, "dotnet_gc_pause_seconds_total", "counter", "Time the runtime held every thread paused for garbage collection.");
        MetricsRoutes.Sample(text, "dotnet_gc_pause_seconds_total", GC.GetTotalPauseDuration().TotalSeconds);

        MetricsRoutes.Family(text, "dotnet_total_memory_bytes", "gauge", "Managed heap bytes in use (live objects and garbage not yet collected).");
        MetricsRoutes.Sample(text, "dotnet_total_memory_bytes", GC.GetTotalMemory(forceFullCollection: false));
    }
}
