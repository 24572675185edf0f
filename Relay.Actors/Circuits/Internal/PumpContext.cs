using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors.Dispatch;

namespace Relay.Actors.Circuits.Internal;

/// <summary>
/// INTERNAL API. What a circuit's reader and writer share, made once by the supervisor when
/// the circuit is established (or restored on this node after a handover): both sockets with
/// their registrations on the core's event loop, the supervisor they report to, the byte
/// counters, the <see cref="FinCarrier"/> that ends a direction, and the circuit's sizes.
/// One object rather than ten constructor arguments: the pumps of a circuit are made from the
/// same facts, and a restored circuit is made from these facts and nothing else.
/// </summary>
internal sealed class PumpContext(
    CircuitEntry entry,
    IoRegistration clientIo,
    IoRegistration upstreamIo,
    IActorRef supervisor,
    int writeSize,
    int segmentsPerDirection,
    bool splice = false) : FinCarrier(supervisor)
{
    /// <summary>The circuit's entry: its sockets' handles and its counters are there (a reference each fewer here).</summary>
    public CircuitEntry Entry { get; } = entry;

    public SafeSocketHandle Client => Entry.ClientHandle!;

    public IoRegistration ClientIo { get; } = clientIo;

    public SafeSocketHandle Upstream => Entry.UpstreamHandle!;

    public IoRegistration UpstreamIo { get; } = upstreamIo;

    public CircuitCounters Counters => Entry.Counters;

    /// <summary>The circuit's <see cref="FinCarrier"/>: this context itself (see there).</summary>
    public FinCarrier Fins => this;

    /// <summary>Bytes per read (and per segment).</summary>
    public int WriteSize { get; } = writeSize;

    /// <summary>A direction's window, in segments of <see cref="WriteSize"/>.</summary>
    public int SegmentsPerDirection { get; } = segmentsPerDirection;

    /// <summary>Whether a direction that carries a bulk transfer moves it with splice(2) (the route's <c>splice</c>).</summary>
    public bool Splice { get; } = splice;
}

/// <summary>
/// INTERNAL API. What a circuit's reader starts from: the circuit's <see cref="PumpContext"/>,
/// and for a circuit restored after a handover, what each destination is owed first and how
/// far each direction had ended. A new reader gets it through its props, a parked one (whose
/// last circuit has closed) as a message.
/// </summary>
/// <param name="Restored">
/// The sockets were restored on this node after a handover: their receive queues may hold
/// bytes whose edge was raised before this reader had them, so each lane reads before it waits.
/// </param>
/// <param name="SeedUp">Bytes owed to the upstream before any read from the client: a restored circuit carries them over.</param>
/// <param name="SeedDown">Likewise, owed to the client.</param>
/// <param name="Up">How far a restored circuit's up direction had ended on the old node.</param>
/// <param name="Down">Likewise down.</param>
internal sealed record PumpStart(
    PumpContext Context,
    bool Restored = false,
    ReadOnlyMemory<byte> SeedUp = default,
    ReadOnlyMemory<byte> SeedDown = default,
    DirectionEnd Up = DirectionEnd.Open,
    DirectionEnd Down = DirectionEnd.Open);
