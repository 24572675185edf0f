using System.Net;

namespace Relay.Actors.Handover;

/// <summary>
/// One circuit as it travels from the node that hands it over to the node that takes it: its
/// identity and counters (so the circuit goes on with the same id, bytes and timers), both
/// sockets' kernel state, and the bytes the relay itself held for each direction. Written and
/// read by <see cref="CircuitImageFormat"/>.
/// <para>
/// Per direction, the bytes reach the destination in this order: the destination socket's
/// sent-but-unacknowledged bytes (restored into its kernel), its unsent bytes
/// (<see cref="TcpRepair.Restore"/>'s <c>unsent</c>), the relay's own
/// <see cref="ToUpstream"/>/<see cref="ToClient"/>, then the source socket's receive queue
/// (restored into its kernel, read by the relay as usual).
/// </para>
/// </summary>
public sealed record CircuitImage
{
    /// <summary>The circuit's id, kept on the new node.</summary>
    public required long Id { get; init; }

    /// <summary>The route's name; the new node applies its own settings of that name.</summary>
    public required string Route { get; init; }

    /// <summary>The node that opened the circuit.</summary>
    public required string Node { get; init; }

    public required DateTimeOffset OpenedAt { get; init; }

    /// <summary>Milliseconds since the circuit's last activity, so idle timers go on where they were.</summary>
    public required long QuietMs { get; init; }

    public required long BytesUp { get; init; }

    public required long BytesDown { get; init; }

    public required long ReadUp { get; init; }

    public required long ReadDown { get; init; }

    /// <summary>How many times the circuit has been handed over before this move.</summary>
    public required int Moves { get; init; }

    public required DateTimeOffset? LastMovedAt { get; init; }

    /// <summary>The upstream as shown to operators.</summary>
    public required string Upstream { get; init; }

    /// <summary>The client address shown (from a PROXY header when the route reads one).</summary>
    public required IPEndPoint Client { get; init; }

    /// <summary>The destination a PROXY header named, if any.</summary>
    public required IPEndPoint? ProxiedDestination { get; init; }

    /// <summary>The circuit's phase, carried as the data path encodes it.</summary>
    public required byte Phase { get; init; }

    public required TcpSocketImage ClientSocket { get; init; }

    public required TcpSocketImage UpstreamSocket { get; init; }

    /// <summary>Bytes the relay had read from the client and not yet written upstream.</summary>
    public required ReadOnlyMemory<byte> ToUpstream { get; init; }

    /// <summary>Bytes the relay had read from upstream and not yet written to the client.</summary>
    public required ReadOnlyMemory<byte> ToClient { get; init; }
}
