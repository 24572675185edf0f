using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors.Internal;

namespace Relay.Actors.Circuits.Internal;

/// <summary>
/// INTERNAL API. Writes one direction of a circuit to its destination socket, returns each
/// <see cref="Segment"/> to the reader as credit once its bytes are in the kernel, and
/// carries the source's FIN on as shutdown(SHUT_WR) after the last byte (RFC 9293 §3.6:
/// a FIN ends one direction only; the other keeps flowing).
/// <para>
/// Sends are non-blocking calls made inline; only when the kernel's send buffer is full
/// does the writer fall back to an asynchronous send of the remainder, and segments that
/// arrive meanwhile wait in a queue that the reader's window bounds.
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
    private readonly ActorSocketEventArgs _sendCompletion;
    private IActorRef _reader = ActorRefs.Nobody;
    private Segment? _sending;
    private bool _endOfStreamPending;
    private bool _ended;

    public SocketWriter(Socket destination, CircuitSide destinationSide, Direction direction,
        IActorRef supervisor, CircuitCounters counters, int segments)
    {
        _destination = destination;
        _destinationSide = destinationSide;
        _direction = direction;
        _supervisor = supervisor;
        _counters = counters;
        _queue = new Queue<Segment>(segments);
        _sendCompletion = new ActorSocketEventArgs(Self);
    }

    public static Props Props(Socket destination, CircuitSide destinationSide, Direction direction,
        IActorRef supervisor, CircuitCounters counters, int segments) =>
        PropsFactory.Of(() => new SocketWriter(destination, destinationSide, direction, supervisor, counters, segments));

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

            case PumpProtocol.IoCompleted:
                OnAsyncSendCompleted();
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

    /// <summary>Sends inline until done, or until the kernel is full and an async send takes over.</summary>
    private void Send(Segment segment, int offset)
    {
        while (true)
        {
            var sent = _destination.Send(segment.Buffer!, offset, segment.Length - offset, SocketFlags.None, out var error);
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
                _sendCompletion.SetBuffer(segment.Buffer, offset, segment.Length - offset);
                bool pending;
                try
                {
                    pending = _destination.SendAsync(_sendCompletion);
                }
                catch (ObjectDisposedException)
                {
                    _ended = true;
                    return;
                }

                if (!pending)
                {
                    Self.Tell(PumpProtocol.IoCompleted.Instance);
                }

                return;
            }

            _sending = segment;
            Fail(error);
            return;
        }
    }

    private void OnAsyncSendCompleted()
    {
        var segment = _sending;
        if (segment is null || _ended)
        {
            return;
        }

        if (_sendCompletion.SocketError != SocketError.Success)
        {
            Fail(_sendCompletion.SocketError);
            return;
        }

        // On Linux an async send completes only when all of its bytes are queued in the kernel.
        var sent = _sendCompletion.BytesTransferred;
        _counters.AddWritten(_direction == Direction.Up, sent, Environment.TickCount64);
        var offset = _sendCompletion.Offset + sent;
        if (offset < segment.Length)
        {
            Send(segment, offset);
            return;
        }

        _sending = null;
        _reader.Tell(segment, Self);
        if (_queue.TryDequeue(out var next))
        {
            Send(next, 0);
        }
        else
        {
            FinishIfDrained();
        }
    }

    private void FinishIfDrained()
    {
        if (!_endOfStreamPending || _ended || _sending is not null || _queue.Count > 0)
        {
            return;
        }

        _ended = true;
        try
        {
            _destination.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException e)
        {
            _supervisor.Tell(new PumpProtocol.SideFailed(_destinationSide, e.SocketErrorCode));
            return;
        }
        catch (ObjectDisposedException)
        {
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

    protected override void PostStop()
    {
        _sendCompletion.Dispose();
    }
}
