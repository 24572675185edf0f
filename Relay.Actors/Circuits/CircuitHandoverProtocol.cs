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
/// Established ─Freeze─► Freezing ─pumps stopped─► Frozen ─Release─► (gone: Released)
///      ▲                    │                        │
///      └──── not movable ───┘◄──────── Thaw ─────────┘
/// </code>
/// </summary>
public static class CircuitHandoverProtocol
{
    /// <summary>Stop moving bytes and answer <paramref name="ReplyTo"/> with <see cref="Frozen"/> or <see cref="NotMovable"/>.</summary>
    public sealed record Freeze(IActorRef ReplyTo) : INoSerializationVerificationNeeded;

    /// <summary>
    /// The circuit is frozen: no byte leaves its sockets or its pumps until a thaw. The
    /// sockets stay the supervisor's (registered with its core) until <see cref="Release"/>.
    /// </summary>
    /// <param name="ToUpstream">Bytes read from the client and not yet in the upstream socket's kernel queue, in order (a copy).</param>
    /// <param name="ToClient">Likewise from the upstream to the client.</param>
    /// <param name="QuietMs">Milliseconds since the circuit last moved a byte.</param>
    public sealed record Frozen(CircuitEntry Entry, Socket Client, Socket Upstream, byte[] ToUpstream, byte[] ToClient, long QuietMs)
        : INoSerializationVerificationNeeded;

    /// <summary>The circuit cannot be moved now (<paramref name="Why"/>, a few words); it was not frozen, or is running again.</summary>
    public sealed record NotMovable(CircuitEntry Entry, string Why) : INoSerializationVerificationNeeded;

    /// <summary>The handover is called off: a frozen circuit goes on where it stopped.</summary>
    public sealed class Thaw : INoSerializationVerificationNeeded
    {
        public static readonly Thaw Instance = new();

        private Thaw()
        {
        }
    }

    /// <summary>
    /// The circuit now runs on another node: the supervisor takes its sockets off its core's
    /// event loop without closing them, leaves the circuit table, answers
    /// <see cref="Released"/> and stops. The sender closes the sockets (silently, in repair
    /// mode) once it has the answer.
    /// </summary>
    public sealed class Release : INoSerializationVerificationNeeded
    {
        public static readonly Release Instance = new();

        private Release()
        {
        }
    }

    /// <summary>The answer to <see cref="Release"/>: nothing on this node touches the circuit's sockets any more.</summary>
    public sealed record Released(CircuitEntry Entry) : INoSerializationVerificationNeeded;
}

/// <summary>
/// A circuit restored on this node after a handover: its two sockets (connected, out of
/// repair mode) and what each destination is still owed before anything read from now on
/// (the unsent part of the old node's kernel send queue, then its pumps' bytes).
/// </summary>
public sealed record RestoredCircuit(Socket Client, Socket Upstream, ReadOnlyMemory<byte> ToUpstream, ReadOnlyMemory<byte> ToClient);

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
