using System.Collections.Concurrent;

namespace Relay.Actors.Upstreams;

/// <summary>
/// The current upstream pool of each route on this node, for management and metrics. The
/// guardian replaces a route's pool when a reload changes the route; circuits of the old
/// settings keep their own reference to the old pool until they end.
/// </summary>
public sealed class UpstreamPools
{
    private readonly ConcurrentDictionary<string, UpstreamPool> _pools = new(StringComparer.Ordinal);

    public bool TryGet(string route, out UpstreamPool pool) => _pools.TryGetValue(route, out pool!);

    /// <summary>Every route's pool, ordered by route name.</summary>
    public IReadOnlyList<UpstreamPool> All() => _pools.Values.OrderBy(p => p.Route, StringComparer.Ordinal).ToList();

    internal void Set(UpstreamPool pool) => _pools[pool.Route] = pool;

    internal void Remove(string route) => _pools.TryRemove(route, out _);
}
