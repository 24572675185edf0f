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
/// </summary>
internal sealed class FinCarrier(IActorRef supervisor)
{
    private bool _upFinished;
    private bool _downFinished;

    /// <summary>Sends <paramref name="direction"/>'s FIN to <paramref name="destination"/> and reports the direction over.</summary>
    public void Finish(Direction direction, Socket destination, CircuitSide destinationSide)
    {
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
                supervisor.Tell(new PumpProtocol.SideFailed(destinationSide, shutdown));
                return;
            }
        }

        // Else this is the last direction: the supervisor closes both sockets as soon as it
        // hears this, and close(2) sends the same FIN after the same bytes (the destination's
        // input has been read to its EOF, so nothing unread turns the close into a reset).
        // One shutdown(2) fewer per circuit.
        if (direction == Direction.Up)
        {
            _upFinished = true;
        }
        else
        {
            _downFinished = true;
        }

        supervisor.Tell(PumpProtocol.DirectionFinished.Of(direction));
    }
}
