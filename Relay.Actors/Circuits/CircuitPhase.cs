namespace Relay.Actors.Circuits;

/// <summary>
/// INTERNAL API. Where a live circuit is in its life: the one state its
/// <see cref="CircuitSupervisor"/> keeps, which picks the handler for each message and from
/// which the entry's public <see cref="CircuitState"/> is derived
/// (<see cref="CircuitPhases.ToPublicState"/>).
/// <code>
/// Connecting ─► Established ─┬─► UpFinished ───┬─► Closed
///                            └─► DownFinished ─┘
/// </code>
/// A reset or an error moves any phase to <see cref="Closed"/>; nothing leaves it. A handover
/// moves an open phase (established or half-closed) to <see cref="Freezing"/>, then
/// <see cref="Frozen"/>; a thaw, or a circuit found not movable, goes back to the phase it
/// came from, and a circuit released to another node goes to <see cref="Closed"/>.
/// </summary>
internal enum CircuitPhase
{
    /// <summary>The client was accepted; the upstream connection is being made, member after member.</summary>
    Connecting,

    /// <summary>Both connections are open and the pumps move bytes both ways.</summary>
    Established,

    /// <summary>The client→upstream direction ended with a FIN, delivered upstream; upstream→client still flows.</summary>
    UpFinished,

    /// <summary>The upstream→client direction ended with a FIN, delivered to the client; client→upstream still flows.</summary>
    DownFinished,

    /// <summary>Both directions ended, or the circuit was reset: the sockets are closed and the entry is out of the table.</summary>
    Closed,

    /// <summary>A handover asked the circuit to stop: its pumps are stopping at a byte boundary.</summary>
    Freezing,

    /// <summary>No byte moves: the sockets and what the pumps hold are ready to be dumped, until a thaw or a release.</summary>
    Frozen,
}

/// <summary>INTERNAL API. The rules of <see cref="CircuitPhase"/>: which moves exist, and what the outside sees.</summary>
internal static class CircuitPhases
{
    /// <summary>
    /// Whether a circuit in <paramref name="from"/> may move to <paramref name="to"/>. A move
    /// not listed here is a bug in the circuit, and the supervisor throws rather than carry on
    /// in a state it does not understand.
    /// </summary>
    public static bool CanMove(CircuitPhase from, CircuitPhase to) => (from, to) switch
    {
        (CircuitPhase.Connecting, CircuitPhase.Established) => true,
        (CircuitPhase.Established, CircuitPhase.UpFinished or CircuitPhase.DownFinished) => true,
        (CircuitPhase.Established or CircuitPhase.UpFinished or CircuitPhase.DownFinished, CircuitPhase.Freezing) => true,
        (CircuitPhase.Freezing, CircuitPhase.Frozen) => true,
        (CircuitPhase.Freezing or CircuitPhase.Frozen, CircuitPhase.Established or CircuitPhase.UpFinished or CircuitPhase.DownFinished) => true,
        (CircuitPhase.Closed, _) => false,
        (_, CircuitPhase.Closed) => true,
        _ => false,
    };

    /// <summary>The half-closed phase in which <paramref name="direction"/> is the one that has ended.</summary>
    public static CircuitPhase Finished(Direction direction) =>
        direction == Direction.Up ? CircuitPhase.UpFinished : CircuitPhase.DownFinished;

    public static bool IsHalfClosed(this CircuitPhase phase) => phase is CircuitPhase.UpFinished or CircuitPhase.DownFinished;

    /// <summary>
    /// The state <c>GET /circuits</c> shows for a circuit in <paramref name="phase"/>.
    /// (<see cref="CircuitState.Lost"/> is never a live circuit's: the cluster table gives it to
    /// the circuits of a node that left.)
    /// </summary>
    public static CircuitState ToPublicState(this CircuitPhase phase) => phase switch
    {
        CircuitPhase.Connecting => CircuitState.Connecting,
        CircuitPhase.Established => CircuitState.Established,
        CircuitPhase.UpFinished or CircuitPhase.DownFinished => CircuitState.HalfClosed,
        CircuitPhase.Closed => CircuitState.Closed,
        CircuitPhase.Freezing or CircuitPhase.Frozen => CircuitState.HandingOver,
        _ => throw new ArgumentOutOfRangeException(nameof(phase), phase, null),
    };
}
