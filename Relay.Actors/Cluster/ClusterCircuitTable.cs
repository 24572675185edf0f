using System.Collections.Concurrent;
using System.Collections.Immutable;
using Relay.Actors.Circuits;

namespace Relay.Actors.Cluster;

/// <summary>
/// The circuits of the other nodes as this node's replica last saw them, plus the circuits
/// of nodes that were lost. Written only by <see cref="CircuitStateActor"/>; read lock-free
/// by management (<c>GET /circuits</c>) from any thread.
/// </summary>
public sealed class ClusterCircuitTable
{
    private readonly ConcurrentDictionary<(string Node, int Shard), CircuitShard> _remote = new();
    private readonly ConcurrentDictionary<string, LostNode> _lost = new(StringComparer.Ordinal);

    /// <summary>Circuits open on other nodes, as last replicated.</summary>
    public IReadOnlyList<(string Node, CircuitRecord Circuit)> Remote() =>
        _remote.Values.SelectMany(s => s.Circuits.Select(c => (s.Node, c))).ToList();

    /// <summary>Circuits that were open on a node when it was lost; their state is <c>lost</c>.</summary>
    public IReadOnlyList<(string Node, CircuitRecord Circuit)> Lost() =>
        _lost.Values.SelectMany(l => l.Circuits.Select(c => (l.Node, c))).ToList();

    /// <summary>How many circuits of other nodes are replicated here (lost ones not counted).</summary>
    public int RemoteCount => _remote.Values.Sum(s => s.Circuits.Length);

    internal void Put(CircuitShard shard)
    {
        if (shard.Circuits.IsEmpty)
        {
            _remote.TryRemove((shard.Node, shard.Shard), out _);
        }
        else
        {
            _remote[(shard.Node, shard.Shard)] = shard;
        }
    }

    /// <summary>
    /// Moves the open circuits of <paramref name="node"/> to the lost list and returns them,
    /// except those <paramref name="runsHere"/> names: circuits the node handed over before it
    /// went, which its last published table may still list.
    /// </summary>
    internal ImmutableArray<CircuitRecord> MarkLost(string node, DateTimeOffset until, Func<CircuitRecord, bool>? runsHere = null)
    {
        var open = ImmutableArray.CreateBuilder<CircuitRecord>();
        foreach (var key in _remote.Keys.Where(k => k.Node == node).ToList())
        {
            if (_remote.TryRemove(key, out var shard))
            {
                open.AddRange(shard.Circuits
                    .Where(c => c.State != CircuitState.Closed && runsHere?.Invoke(c) != true)
                    .Select(c => c with { State = CircuitState.Lost }));
            }
        }

        var lost = open.ToImmutable();
        if (!lost.IsEmpty)
        {
            _lost[node] = new LostNode(node, lost, until);
        }

        return lost;
    }

    /// <summary>Drops lost circuits whose retention has passed.</summary>
    internal void Expire(DateTimeOffset now)
    {
        foreach (var (node, lost) in _lost)
        {
            if (lost.Until <= now)
            {
                _lost.TryRemove(node, out _);
            }
        }
    }

    private sealed record LostNode(string Node, ImmutableArray<CircuitRecord> Circuits, DateTimeOffset Until);
}
