using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors.Dispatch;
using Relay.Actors.Internal;

namespace Relay.Actors.Circuits.Internal;

/// <summary>
/// INTERNAL API. Writes one direction of a circuit to its destination socket, returns each
/// <see cref="Segment"/> to the reader as credit once its bytes are in the kernel, and
/// carries the source's FIN on as shutdown(SHUT_WR) after the last byte (RFC 9293 §3.6:
/// a FIN ends one direction only; the other keeps flowing).
/// <para>
/// Sends are non-blocking calls made inline; only when the kernel's send buffer is full
/// does the writer wait for the core's <see cref="CoreEventLoop"/> to report the socket
/// writable, and segments that arrive meanwhile wait in a queue that the reader's window
/// bounds.
/// </para>
/// </summary>
internal sealed class SocketWriter : UntypedActor
{
    private readonly Socket _destination;
    private readonly CircuitSide _destinationSide;
    private readonly Direction _direction;
    private readonly IActorRef _supervisor;
    private readonly CircuitCounters _counters;
    private readonly Queue<Segment> _queue;
    private readonly IoRegistration _io;
    private IActorRef _reader = ActorRefs.Nobody;
    private Segment? _sending;
    private int _sendingOffset;
    private bool _endOfStreamPending;
    private bool _ended;

    public SocketWriter(Socket destination, IoRegistration io, CircuitSide destinationSide, Direction direction,
        IActorRef supervisor, CircuitCounters counters, int segments)
    {
        _destination = destination;
        _io = io;
        _destinationSide = destinationSide;
        _direction = direction;
        _supervisor = supervisor;
        _counters = counters;
        _queue = new Queue<Segment>(segments);
    }

    public static Props Props(Socket destination, IoRegistration io, CircuitSide destinationSide, Direction direction,
        IActorRef supervisor, CircuitCounters counters, int segments, string dispatcher) =>
        PropsFactory.Of(() => new SocketWriter(destination, io, destinationSide, direction, supervisor, counters, segments), dispatcher);

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case Segment segment:
                _reader = Sender;
                if (_ended)
                {
                    // The circuit is being reset; hand the credit straight back.
                    _reader.Tell(segment, Self);
                }
                else if (_sending is null)
                {
                    Send(segment, 0);
                }
                else
                {
                    _queue.Enqueue(segment);
                }

                break;

            case SocketReady:
                if (_sending is { } pending && !_ended)
                {
                    Send(pending, _sendingOffset);
                }

                break;

            case PumpProtocol.EndOfStream:
                _endOfStreamPending = true;
                if (_sending is null)
                {
                    FinishIfDrained();
                }

                break;

            default:
                Unhandled(message);
                break;
        }
    }

    /// <summary>Sends inline until done, or until the kernel is full and the writer waits for room.</summary>
    private void Send(Segment segment, int offset)
    {
        while (true)
        {
            var sent = RawSocket.Send(_destination, segment.Buffer!, offset, segment.Length - offset, out var error);
            if (error == SocketError.Success)
            {
                _counters.AddWritten(_direction == Direction.Up, sent, Environment.TickCount64);
                offset += sent;
                if (offset < segment.Length)
                {
                    continue;
                }

                _reader.Tell(segment, Self);
                if (!_queue.TryDequeue(out var next))
                {
                    _sending = null;
                    FinishIfDrained();
                    return;
                }

                segment = next;
                offset = 0;
                continue;
            }

            if (error == SocketError.WouldBlock)
            {
                _sending = segment;
                _sendingOffset = offset;
                _io.AwaitWritable(Self);
                return;
            }

            _sending = segment;
            Fail(error);
            return;
        }
    }

    private void FinishIfDrained()
    {
        if (!_endOfStreamPending || _ended || _sending is not null || _queue.Count > 0)
        {
            return;
        }

        _ended = true;
        var shutdown = RawSocket.ShutdownSend(_destination);
        if (shutdown == SocketError.OperationAborted)
        {
            // The supervisor closed the socket already: the circuit is ending anyway.
            return;
        }

        if (shutdown != SocketError.Success)
        {
            _supervisor.Tell(new PumpProtocol.SideFailed(_destinationSide, shutdown));
            return;
        }

        _supervisor.Tell(new PumpProtocol.DirectionFinished(_direction));
    }

    private void Fail(SocketError error)
    {
        if (_ended)
        {
            return;
        }

        _ended = true;
        _supervisor.Tell(new PumpProtocol.SideFailed(_destinationSide, error));
    }

}
