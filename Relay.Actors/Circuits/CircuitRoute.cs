using Relay.Actors.Configuration;
using Relay.Actors.Metrics;
using Relay.Actors.Upstreams;

namespace Relay.Actors.Circuits;

/// <summary>
/// INTERNAL API. The route as its circuits' supervisors see it: its settings, the node's circuit
/// table, the route's counters, its upstream pool and its acceptor's parking lot. The same for
/// every supervisor of an acceptor, so they share one of these rather than five references
/// each (40 B per circuit, idle ones included).
/// </summary>
/// <param name="Pool">The route's shared pool; null makes one per supervisor (see <see cref="ForSupervisor"/>).</param>
/// <param name="Parking">Where a supervisor parks between circuits; null: it stops when its circuit closes.</param>
internal sealed record CircuitRoute(
    RouteSettings Settings,
    CircuitRegistry Registry,
    RouteMetrics? Metrics,
    UpstreamPool? Pool,
    CircuitParking? Parking)
{
    /// <summary>
    /// What one supervisor uses: this, or without a shared pool (tests) a copy with a pool of
    /// the supervisor's own, so no supervisor sees another's member failures.
    /// </summary>
    public CircuitRoute ForSupervisor() => Pool is null ? this with { Pool = new UpstreamPool(Settings.Name, Settings.Upstreams) } : this;

    /// <summary>The pool, once <see cref="ForSupervisor"/> has made sure there is one.</summary>
    public UpstreamPool Upstreams => Pool!;
}
