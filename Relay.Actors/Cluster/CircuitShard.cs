using System.Collections.Immutable;
using Relay.Actors.Circuits;

namespace Relay.Actors.Cluster;

/// <summary>
/// One circuit as the cluster sees it: what <c>GET /circuits</c> lists for a circuit of
/// another node. Times are UTC unix milliseconds, so every node reads them the same way.
/// </summary>
public sealed record CircuitRecord(
    long Id,
    string Route,
    string Client,
    string Upstream,
    CircuitState State,
    long BytesUp,
    long BytesDown,
    long OpenedAtMs,
    long LastActivityMs)
{
    /// <summary>How a record names its circuit's client (with the route, what makes it one circuit).</summary>
    public static string ClientOf(CircuitEntry entry) => entry.Client.ToString() ?? string.Empty;

    public static CircuitRecord From(CircuitEntry entry) => new(
        entry.Id,
        entry.Route,
        ClientOf(entry),
        entry.Upstream,
        entry.State,
        entry.Counters.BytesUp,
        entry.Counters.BytesDown,
        entry.OpenedAt.ToUnixTimeMilliseconds(),
        entry.LastActivity.ToUnixTimeMilliseconds());
}

/// <summary>
/// The part of one node's circuit table stored under one DistributedData key: the circuits
/// whose id falls in <see cref="Shard"/>. Splitting keeps every replicated value far below
/// Akka.Remote's frame size, whatever the circuit count (see relay.cluster.state-shards).
/// </summary>
/// <param name="Node">The owning node's address, as circuits name their node.</param>
public sealed record CircuitShard(string Node, int Shard, ImmutableArray<CircuitRecord> Circuits)
{
    public bool Equals(CircuitShard? other) =>
        other is not null && Node == other.Node && Shard == other.Shard && Circuits.SequenceEqual(other.Circuits);

    public override int GetHashCode() => HashCode.Combine(Node, Shard, Circuits.Length);
}
