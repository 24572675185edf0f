using System.Net;
using System.Net.Sockets;
using Akka.Actor;

namespace Relay.Actors.Circuits;

/// <summary>
/// What the handover says to a <see cref="CircuitSupervisor"/>, and what it answers. A circuit
/// asked to <see cref="Freeze"/> stops both pumps at a byte boundary and answers once:
/// <see cref="Frozen"/> (its sockets and the bytes its pumps hold; nothing moves until it is
/// told <see cref="Thaw"/> or <see cref="Release"/>) or <see cref="NotMovable"/> (it stays and
/// runs on, or it ended meanwhile).
/// <code>
/// Established ─Freeze─► Freezing ─pumps stopped─► Frozen ─Release─► (closed here: Released)
///      ▲                    │                        │
///      └──── not movable ───┘◄──────── Thaw ─────────┘
/// </code>
/// </summary>
public static class CircuitHandoverProtocol
{
    /// <summary>
    /// Stop moving bytes and answer <paramref name="ReplyTo"/> with <see cref="Frozen"/> or
    /// <see cref="NotMovable"/>. Every message here names its circuit (<paramref name="Entry"/>,
    /// or the id): a supervisor serves one circuit after another, and one that has moved on
    /// answers for the circuit asked about, not for the one it serves now.
    /// </summary>
    public sealed record Freeze(IActorRef ReplyTo, CircuitEntry Entry) : INoSerializationVerificationNeeded;

    /// <summary>
    /// The circuit is frozen: no byte leaves its sockets or its pumps until a thaw. The
    /// sockets stay the supervisor's (registered with its core) until <see cref="Release"/>.
    /// </summary>
    /// <param name="ToUpstream">Bytes read from the client and not yet in the upstream socket's kernel queue, in order (a copy).</param>
    /// <param name="ToClient">Likewise from the upstream to the client.</param>
    /// <param name="QuietMs">Milliseconds since the circuit last moved a byte or ended a direction.</param>
    /// <param name="Up">How far the client→upstream direction had ended (a half-closed circuit moves too).</param>
    /// <param name="Down">Likewise upstream→client.</param>
    public sealed record Frozen(CircuitEntry Entry, Socket Client, Socket Upstream, byte[] ToUpstream, byte[] ToClient, long QuietMs,
        DirectionEnd Up, DirectionEnd Down)
        : INoSerializationVerificationNeeded;

    /// <summary>The circuit cannot be moved now (<paramref name="Why"/>, a few words); it was not frozen, or is running again.</summary>
    public sealed record NotMovable(CircuitEntry Entry, string Why) : INoSerializationVerificationNeeded;

    /// <summary>The handover is called off: a frozen circuit goes on where it stopped.</summary>
    public sealed record Thaw(long CircuitId) : INoSerializationVerificationNeeded;

    /// <summary>
    /// The circuit now runs on another node: the supervisor takes its sockets off its core's
    /// event loop without closing them, leaves the circuit table, answers
    /// <see cref="Released"/> and waits for its next circuit. The sender closes the sockets
    /// (silently, in repair mode) once it has the answer.
    /// </summary>
    public sealed record Release(long CircuitId) : INoSerializationVerificationNeeded;

    /// <summary>The answer to <see cref="Release"/>: nothing on this node touches the circuit's sockets any more.</summary>
    public sealed record Released(CircuitEntry Entry) : INoSerializationVerificationNeeded;
}

/// <summary>
/// How far one direction of a circuit had ended when it froze for a handover, and so what the
/// node that takes it must still do for that direction.
/// </summary>
public enum DirectionEnd : byte
{
    /// <summary>Its source has not ended (its FIN, if it came, is still in the source socket's receive queue): the pumps read it as usual.</summary>
    Open = 0,

    /// <summary>
    /// Its source's FIN was read, and the FIN is owed to the destination behind the bytes the
    /// relay still holds for it: nothing more is read from the source, and the destination is
    /// shut down (SHUT_WR) once those bytes are in its kernel.
    /// </summary>
    FinOwed = 1,

    /// <summary>The FIN was carried (the destination was shut down): the direction is over; its sockets' state says so.</summary>
    FinCarried = 2,
}

/// <summary>
/// A circuit restored on this node after a handover: its two sockets (connected, out of
/// repair mode) and what each destination is still owed before anything read from now on
/// (the unsent part of the old node's kernel send queue, then its pumps' bytes), and how far
/// each direction had ended (<paramref name="Up"/>, <paramref name="Down"/>): a half-closed
/// circuit starts half-closed, and a FIN still owed follows its direction's owed bytes.
/// </summary>
public sealed record RestoredCircuit(Socket Client, Socket Upstream, ReadOnlyMemory<byte> ToUpstream, ReadOnlyMemory<byte> ToClient,
    DirectionEnd Up = DirectionEnd.Open, DirectionEnd Down = DirectionEnd.Open)
{
    /// <summary>
    /// Why the restore could not be finished (a FIN that could not be put back on a socket),
    /// or null. Such a circuit would run with the wrong state: it resets both peers as it
    /// starts, with this as its close detail.
    /// </summary>
    public string? Problem { get; init; }
}

/// <summary>
/// A circuit arriving from another node in a handover, as its route's acceptor adopts it: who
/// it is (the same id, client, upstream and age as on the node it left, and how often it has
/// moved), where its counters stood, and its restored sockets.
/// </summary>
/// <param name="QuietMs">Milliseconds since it last moved a byte, when it was frozen: the idle timeout goes on from there.</param>
public sealed record MovedCircuit(
    long Id,
    EndPoint Client,
    IPEndPoint? ProxiedDestination,
    string Upstream,
    DateTimeOffset OpenedAt,
    int Moves,
    long BytesUp,
    long BytesDown,
    long ReadUp,
    long ReadDown,
    long QuietMs,
    RestoredCircuit Sockets);
