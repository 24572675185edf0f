using System.Collections.Immutable;
using Relay.Actors.Listening;

namespace Relay.Actors.Cluster;

/// <summary>
/// Whether this node owns the service, and the routes it has bound while it does. Written
/// by <see cref="ServiceOwnerActor"/>; read by management (ready, metrics, routes).
/// </summary>
public sealed class ServiceState
{
    private volatile Snapshot _current = new(false, ImmutableArray<ListenerProtocol.Bound>.Empty, null);

    public bool IsOwner => _current.IsOwner;

    /// <summary>The routes bound as owner; empty on a standby.</summary>
    public ImmutableArray<ListenerProtocol.Bound> Routes => _current.Routes;

    /// <summary>When this node last took the service over, or null if it never has.</summary>
    public DateTimeOffset? OwnerSince => _current.Since;

    internal void TookOver(ImmutableArray<ListenerProtocol.Bound> routes) => _current = new(true, routes, DateTimeOffset.UtcNow);

    /// <summary>A reload changed the routes this owner serves.</summary>
    internal void RoutesChanged(ImmutableArray<ListenerProtocol.Bound> routes)
    {
        var current = _current;
        if (current.IsOwner)
        {
            _current = current with { Routes = routes };
        }
    }

    internal void Released() => _current = new(false, ImmutableArray<ListenerProtocol.Bound>.Empty, _current.Since);

    private sealed record Snapshot(bool IsOwner, ImmutableArray<ListenerProtocol.Bound> Routes, DateTimeOffset? Since);
}
