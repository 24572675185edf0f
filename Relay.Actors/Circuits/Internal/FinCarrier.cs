using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors.Sockets;

namespace Relay.Actors.Circuits.Internal;

/// <summary>
/// INTERNAL API. Ends a direction once its last byte is in the kernel: carries the source's FIN
/// to the destination and tells the supervisor. Either pump may end a direction (the reader
/// when the writer holds none of its bytes, the writer after its backlog), so the circuit's
/// reader and writer share one of these; all three actors of a circuit run on its core's
/// thread, so its state needs no locking.
/// <para>
/// Not sealed: the circuit's <see cref="PumpContext"/> is one, so a circuit has one object for
/// both (32 bytes less per circuit, idle ones included, than a FinCarrier of its own).
/// </para>
/// </summary>
internal class FinCarrier(IActorRef supervisor)
{
    private bool _upFinished;
    private bool _downFinished;

    /// <summary>The circuit's supervisor, which hears of each direction's end.</summary>
    public IActorRef Supervisor { get; } = supervisor;

    /// <summary>Sends <paramref name="direction"/>'s FIN to <paramref name="destination"/> and reports the direction over.</summary>
    public void Finish(Direction direction, SafeSocketHandle destination, CircuitSide destinationSide)
    {
        if (HasFinished(direction))
        {
            // Carried already. A second end of one direction was seen once, after a handover
            // rolled back under a split brain (both nodes had downed each other), and was not
            // reproduced since; the FIN went out with the first, so the second changes nothing
            // on the wire and must not end the circuit.
            return;
        }

        var otherFinished = direction == Direction.Up ? _downFinished : _upFinished;
        if (!otherFinished)
        {
            var shutdown = RawSocket.ShutdownSend(destination);
            if (shutdown == SocketError.OperationAborted)
            {
                // The supervisor closed the socket already: the circuit is ending anyway.
                return;
            }

            if (shutdown != SocketError.Success)
            {
                Supervisor.Tell(new PumpProtocol.SideFailed(destinationSide, shutdown));
                return;
            }
        }

        // Else this is the last direction: the supervisor closes both sockets as soon as it
        // hears this, and close(2) sends the same FIN after the same bytes (the destination's
        // input has been read to its EOF, so nothing unread turns the close into a reset).
        // One shutdown(2) fewer per circuit.
        MarkFinished(direction);
        Supervisor.Tell(PumpProtocol.DirectionFinished.Of(direction));
    }

    /// <summary>Whether <paramref name="direction"/>'s FIN has been carried (or, for the last direction, left to the close).</summary>
    public bool HasFinished(Direction direction) => direction == Direction.Up ? _upFinished : _downFinished;

    /// <summary>
    /// Marks <paramref name="direction"/> over, with no shutdown and no report: what
    /// <see cref="Finish"/> does once it has done both, and all there is to do for a restored
    /// circuit's direction whose FIN the old node carried (the restored socket's state has the
    /// FIN, and the supervisor starts half-closed). The other direction's end is then the last.
    /// </summary>
    public void MarkFinished(Direction direction)
    {
        if (direction == Direction.Up)
        {
            _upFinished = true;
        }
        else
        {
            _downFinished = true;
        }
    }

    /// <summary>How far <paramref name="direction"/> has ended, for a freeze: <paramref name="sourceEnded"/> is whether its source's EOF was read.</summary>
    public DirectionEnd EndOf(Direction direction, bool sourceEnded) =>
        HasFinished(direction) ? DirectionEnd.FinCarried : sourceEnded ? DirectionEnd.FinOwed : DirectionEnd.Open;
}
