using System.Net;
using Relay.Actors.Circuits;

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

    /// <summary>
    /// How far each direction had ended (<see cref="DirectionEnd"/>): bits 0-1 the
    /// client→upstream direction's, bits 2-3 the upstream→client direction's, the other bits 0.
    /// <see cref="PhaseOf"/> makes it; <see cref="Up"/> and <see cref="Down"/> read it.
    /// </summary>
    public required byte Phase { get; init; }

    /// <summary>How far the client→upstream direction had ended.</summary>
    public DirectionEnd Up => (DirectionEnd)(Phase & 0b11);

    /// <summary>How far the upstream→client direction had ended.</summary>
    public DirectionEnd Down => (DirectionEnd)((Phase >> 2) & 0b11);

    /// <summary>The <see cref="Phase"/> of a circuit whose directions had ended this far.</summary>
    public static byte PhaseOf(DirectionEnd up, DirectionEnd down) => (byte)((byte)up | ((byte)down << 2));

    /// <summary>
    /// Null if <see cref="Phase"/> is one a live circuit can be in, else why not: each
    /// direction a known <see cref="DirectionEnd"/>, and not both carried (that circuit had closed).
    /// </summary>
    public string? PhaseProblem() =>
        (Phase & ~0b1111) != 0 || Up > DirectionEnd.FinCarried || Down > DirectionEnd.FinCarried
            ? $"phase 0x{Phase:x2} is not two direction ends"
            : Up == DirectionEnd.FinCarried && Down == DirectionEnd.FinCarried
                ? "both directions had ended (a closed circuit)"
                : null;

    public required TcpSocketImage ClientSocket { get; init; }

    public required TcpSocketImage UpstreamSocket { get; init; }

    /// <summary>Bytes the relay had read from the client and not yet written upstream.</summary>
    public required ReadOnlyMemory<byte> ToUpstream { get; init; }

    /// <summary>Bytes the relay had read from upstream and not yet written to the client.</summary>
    public required ReadOnlyMemory<byte> ToClient { get; init; }
}
