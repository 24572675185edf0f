using System.Collections.Concurrent;
using Relay.Actors.Circuits;

namespace Relay.Actors.Metrics;

/// <summary>
/// The counters of one node, owned by <see cref="RelayNode"/>: one <see cref="RouteMetrics"/>
/// per route, looked up once when a route's listener starts and handed down to its circuits.
/// </summary>
public sealed class RelayMetrics
{
    private readonly ConcurrentDictionary<string, RouteMetrics> _routes = new(StringComparer.Ordinal);

    public RelayMetrics(IEnumerable<string> routes)
    {
        foreach (var route in routes)
        {
            ForRoute(route);
        }
    }

    /// <summary>The node's handovers (a clustered node's; zeros elsewhere).</summary>
    public HandoverMetrics Handovers { get; } = new();

    /// <summary>The counters of <paramref name="route"/>, made on first use.</summary>
    public RouteMetrics ForRoute(string route) => _routes.GetOrAdd(route, name => new RouteMetrics(name));

    /// <summary>
    /// Every route's counters, ordered by name, with the bytes of the circuits still open in
    /// <paramref name="circuits"/> added: one pass over the table per scrape instead of a
    /// shared write per chunk on the data path.
    /// </summary>
    public IReadOnlyList<RouteSample> Collect(CircuitRegistry circuits)
    {
        ArgumentNullException.ThrowIfNull(circuits);

        var live = new Dictionary<string, (long Up, long Down)>(StringComparer.Ordinal);
        foreach (var entry in circuits.Snapshot())
        {
            live.TryGetValue(entry.Route, out var sum);
            live[entry.Route] = (sum.Up + entry.Counters.BytesUp, sum.Down + entry.Counters.BytesDown);
        }

        return _routes.Values
            .OrderBy(r => r.Route, StringComparer.Ordinal)
            .Select(r =>
            {
                live.TryGetValue(r.Route, out var bytes);
                return r.Sample(bytes.Up, bytes.Down);
            })
            .ToList();
    }
}
