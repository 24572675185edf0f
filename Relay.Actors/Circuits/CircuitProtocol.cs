using System.Net.Sockets;
using Akka.Actor;
using Akka.Event;

namespace Relay.Actors.Circuits;

/// <summary>Which way bytes flow through a circuit.</summary>
public enum Direction
{
    /// <summary>Client to upstream (counted as <c>bytesUp</c>).</summary>
    Up,

    /// <summary>Upstream to client (counted as <c>bytesDown</c>).</summary>
    Down,
}

/// <summary>Which of the circuit's two TCP connections something happened on.</summary>
public enum CircuitSide
{
    Client,
    Upstream,
}

/// <summary>
/// Why a circuit ended. These strings are the <c>Reason</c> property of the
/// <c>CircuitClosed</c> event and the <c>reason</c> label of the error metric:
/// operators group by them, so they are stable.
/// </summary>
public static class CloseReasons
{
    /// <summary>Both directions ended with a FIN and every byte was delivered.</summary>
    public const string Complete = "complete";
    public const string ClientReset = "client-reset";
    public const string UpstreamReset = "upstream-reset";
    public const string ClientError = "client-error";
    public const string UpstreamError = "upstream-error";
    public const string UpstreamRefused = "upstream-refused";
    public const string UpstreamUnreachable = "upstream-unreachable";
    public const string UpstreamDnsFailed = "upstream-dns-failed";
    public const string ConnectTimeout = "connect-timeout";
    public const string IdleTimeout = "idle-timeout";
    public const string HalfClosedTimeout = "half-closed-timeout";
    public const string Aborted = "aborted";
    public const string Shutdown = "shutdown";
    public const string InternalError = "internal-error";

    /// <summary>Transparent route: the destination policy or the loop guard refused the original destination.</summary>
    public const string DestinationDenied = "destination-denied";

    /// <summary>Transparent route: the accepted connection's original destination could not be read.</summary>
    public const string NoOriginalDestination = "no-original-destination";

    public static string ForSocketError(CircuitSide side, SocketError error) => (side, error) switch
    {
        (CircuitSide.Client, SocketError.ConnectionReset or SocketError.ConnectionAborted) => ClientReset,
        (CircuitSide.Upstream, SocketError.ConnectionReset or SocketError.ConnectionAborted) => UpstreamReset,
        (CircuitSide.Client, _) => ClientError,
        _ => UpstreamError,
    };

    public static string ForConnectError(SocketError error) => error switch
    {
        SocketError.ConnectionRefused => UpstreamRefused,
        SocketError.HostUnreachable or SocketError.NetworkUnreachable or SocketError.HostDown
            or SocketError.NetworkDown or SocketError.AddressNotAvailable => UpstreamUnreachable,
        SocketError.TimedOut => ConnectTimeout,
        _ => UpstreamError,
    };
}

/// <summary>Commands any part of the node may send to a <see cref="CircuitSupervisor"/>.</summary>
public static class CircuitCommands
{
    /// <summary>
    /// Reset both connections of circuit <paramref name="CircuitId"/> now (management DELETE,
    /// shutdown past its grace). A supervisor serves one circuit after another, so the id says
    /// which: one that has moved on to the next circuit ignores an abort meant for its last.
    /// </summary>
    public sealed record Abort(string Reason, long CircuitId);
}

/// <summary>
/// INTERNAL API. The messages between a circuit's supervisor and its reader/writer children.
/// </summary>
internal static class PumpProtocol
{
    /// <summary>
    /// A message that says nothing but a direction. Each kind has two instances, made once
    /// (<see cref="Up"/>, <see cref="Down"/>, <see cref="Of"/>), so sending one allocates
    /// nothing; dead letters of them (a circuit stopping) are expected.
    /// </summary>
    /// <typeparam name="TSelf">The kind of message; its public constructor is only for the two instances.</typeparam>
    public abstract class DirectionSignal<TSelf> : IDeadLetterSuppression, INoSerializationVerificationNeeded
        where TSelf : DirectionSignal<TSelf>, new()
    {
        public static readonly TSelf Up = new() { Direction = Direction.Up };
        public static readonly TSelf Down = new() { Direction = Direction.Down };

        public Direction Direction { get; private init; }

        public static TSelf Of(Direction direction) => direction == Direction.Up ? Up : Down;
    }

    /// <summary>The reader saw EOF on one direction: the writer shuts that direction's destination down once every queued byte is out.</summary>
    public sealed class EndOfStream : DirectionSignal<EndOfStream>;

    /// <summary>
    /// The socket of one direction may be ready (readable for the reader, writable for the
    /// writer): the pump owns both directions, so readiness says which.
    /// </summary>
    public sealed class Ready : DirectionSignal<Ready>;

    /// <summary>
    /// The destination of a direction the reader splices may take bytes again: the reader
    /// waits for it, rather than the writer, because its bytes wait in the direction's pipe.
    /// </summary>
    public sealed class Room : DirectionSignal<Room>;

    /// <summary>
    /// A writer flushed everything and sent its FIN (or, for the last direction, leaves the FIN
    /// to the close that follows at once): this direction is over.
    /// </summary>
    public sealed class DirectionFinished : DirectionSignal<DirectionFinished>;

    /// <summary>The reader has bytes a destination could not take: the supervisor starts the circuit's writer.</summary>
    public sealed class WriterWanted : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly WriterWanted Instance = new();

        private WriterWanted()
        {
        }
    }

    /// <summary>The supervisor's answer to <see cref="WriterWanted"/>.</summary>
    public sealed record WriterStarted(IActorRef Writer) : INoSerializationVerificationNeeded, IDeadLetterSuppression;

    /// <summary>
    /// Supervisor to reader, then reader to writer: stop moving bytes and say what you hold.
    /// The reader answers the supervisor with <see cref="PumpsFrozen"/>, once for both pumps.
    /// </summary>
    public sealed class Freeze : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly Freeze Instance = new();

        private Freeze()
        {
        }
    }

    /// <summary>Supervisor to reader, then reader to writer: the freeze is called off; go on where you stopped.</summary>
    public sealed class Thaw : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly Thaw Instance = new();

        private Thaw()
        {
        }
    }

    /// <summary>The writer, frozen, to the reader: the bytes it still owes each destination, in order.</summary>
    public sealed record WriterFrozen(byte[] ToUpstream, byte[] ToClient) : INoSerializationVerificationNeeded;

    /// <summary>
    /// The reader to the supervisor: both pumps are frozen. The bytes each destination is still
    /// owed from user space (copies: the pumps keep theirs for a thaw), and how far each
    /// direction had ended: its source's EOF read and its FIN owed behind those bytes, or
    /// carried already (the <see cref="Internal.FinCarrier"/>'s word, on the same thread, so no
    /// <see cref="DirectionFinished"/> still in the mailbox can contradict it).
    /// </summary>
    public sealed record PumpsFrozen(byte[] ToUpstream, byte[] ToClient, DirectionEnd Up, DirectionEnd Down)
        : INoSerializationVerificationNeeded;

    /// <summary>A socket reported an error (a reset, usually): the circuit must be reset.</summary>
    public sealed record SideFailed(CircuitSide Side, SocketError Error) : INoSerializationVerificationNeeded, IDeadLetterSuppression;

    /// <summary>
    /// Supervisor to reader and to writer, once the circuit has closed: forget this circuit and
    /// wait for the next. Each answers <see cref="Parked"/>; until both have, a message of the
    /// old circuit (a credit, a failure, a readiness) may still be on its way, and the
    /// supervisor does not take the next circuit (see <see cref="CircuitParking"/>).
    /// </summary>
    public sealed class Park : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly Park Instance = new();

        private Park()
        {
        }
    }

    /// <summary>A pump's answer to <see cref="Park"/>: it holds nothing of the old circuit and sends nothing more for it.</summary>
    public sealed class Parked : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly Parked Instance = new();

        private Parked()
        {
        }
    }
}
