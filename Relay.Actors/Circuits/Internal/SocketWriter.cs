using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors.Dispatch;
using Relay.Actors.Internal;

namespace Relay.Actors.Circuits.Internal;

/// <summary>
/// INTERNAL API. Writes both directions of a circuit, each to its destination socket
/// (upstream for up, client for down), returns each <see cref="Segment"/> to the reader as
/// credit once its bytes are in the kernel, and carries each source's FIN on as
/// shutdown(SHUT_WR) after that direction's last byte (RFC 9293 §3.6: a FIN ends one
/// direction only; the other keeps flowing). Like <see cref="SocketReader"/>, one actor with
/// a <see cref="Lane"/> per direction.
/// <para>
/// Sends are non-blocking calls made inline; only when a kernel send buffer is full does
/// that lane wait for the core's <see cref="CoreEventLoop"/> to report its socket writable,
/// and segments that arrive meanwhile wait in the lane's queue, which the reader's window
/// bounds. The other lane keeps sending.
/// </para>
/// </summary>
internal sealed class SocketWriter : UntypedActor
{
    private readonly Lane _up;
    private readonly Lane _down;
    private readonly IActorRef _supervisor;
    private readonly CircuitCounters _counters;
    private IActorRef _reader = ActorRefs.Nobody;

    public SocketWriter(Socket upstream, IoRegistration upstreamIo, Socket client, IoRegistration clientIo,
        IActorRef supervisor, CircuitCounters counters, int segments)
    {
        _up = new Lane(upstream, upstreamIo, CircuitSide.Upstream, Direction.Up, segments);
        _down = new Lane(client, clientIo, CircuitSide.Client, Direction.Down, segments);
        _supervisor = supervisor;
        _counters = counters;
    }

    public static Props Props(Socket upstream, IoRegistration upstreamIo, Socket client, IoRegistration clientIo,
        IActorRef supervisor, CircuitCounters counters, int segments, string dispatcher) =>
        PropsFactory.Of(() => new SocketWriter(upstream, upstreamIo, client, clientIo, supervisor, counters, segments), dispatcher);

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case Segment segment:
                _reader = Sender;
                var lane = LaneOf(segment.Direction);
                if (segment.EndsStream)
                {
                    lane.EndOfStreamPending = true;
                }

                if (lane.Ended)
                {
                    // The circuit is being reset; hand the credit straight back.
                    _reader.Tell(segment, Self);
                }
                else if (lane.Sending is null)
                {
                    Send(lane, segment, 0);
                }
                else
                {
                    lane.Queue.Enqueue(segment);
                }

                break;

            case PumpProtocol.Ready ready:
                var writable = LaneOf(ready.Direction);
                if (writable.Sending is { } pending && !writable.Ended)
                {
                    Send(writable, pending, writable.SendingOffset);
                }

                break;

            case PumpProtocol.EndOfStream end:
                var ending = LaneOf(end.Direction);
                ending.EndOfStreamPending = true;
                if (ending.Sending is null)
                {
                    FinishIfDrained(ending);
                }

                break;

            default:
                Unhandled(message);
                break;
        }
    }

    private Lane LaneOf(Direction direction) => direction == Direction.Up ? _up : _down;

    private Lane OtherLane(Lane lane) => ReferenceEquals(lane, _up) ? _down : _up;

    /// <summary>Sends inline until done, or until the kernel is full and the lane waits for room.</summary>
    private void Send(Lane lane, Segment segment, int offset)
    {
        while (true)
        {
            var sent = RawSocket.Send(lane.Destination, segment.Buffer!, offset, segment.Length - offset, out var error,
                finFollows: segment.EndsStream);
            if (error == SocketError.Success)
            {
                _counters.AddWritten(lane.Direction == Direction.Up, sent, Environment.TickCount64);
                offset += sent;
                if (offset < segment.Length)
                {
                    continue;
                }

                _reader.Tell(segment, Self);
                if (!lane.Queue.TryDequeue(out var next))
                {
                    lane.Sending = null;
                    FinishIfDrained(lane);
                    return;
                }

                segment = next;
                offset = 0;
                continue;
            }

            if (error == SocketError.WouldBlock)
            {
                lane.Sending = segment;
                lane.SendingOffset = offset;
                lane.Io.AwaitWritable(Self, PumpProtocol.Ready.Of(lane.Direction));
                return;
            }

            lane.Sending = segment;
            Fail(lane, error);
            return;
        }
    }

    private void FinishIfDrained(Lane lane)
    {
        if (!lane.EndOfStreamPending || lane.Ended || lane.Sending is not null || lane.Queue.Count > 0)
        {
            return;
        }

        lane.Ended = true;
        if (OtherLane(lane).FinSent)
        {
            // The last direction: the supervisor closes both sockets as soon as it hears this,
            // and close(2) sends the same FIN after the same bytes (the destination's input has
            // been read to its EOF, so nothing unread turns the close into a reset). One
            // shutdown(2) fewer per circuit.
            lane.FinSent = true;
            _supervisor.Tell(PumpProtocol.DirectionFinished.Of(lane.Direction));
            return;
        }

        var shutdown = RawSocket.ShutdownSend(lane.Destination);
        if (shutdown == SocketError.OperationAborted)
        {
            // The supervisor closed the socket already: the circuit is ending anyway.
            return;
        }

        if (shutdown != SocketError.Success)
        {
            _supervisor.Tell(new PumpProtocol.SideFailed(lane.DestinationSide, shutdown));
            return;
        }

        lane.FinSent = true;
        _supervisor.Tell(PumpProtocol.DirectionFinished.Of(lane.Direction));
    }

    private void Fail(Lane lane, SocketError error)
    {
        if (lane.Ended)
        {
            return;
        }

        lane.Ended = true;
        _supervisor.Tell(new PumpProtocol.SideFailed(lane.DestinationSide, error));
    }

    /// <summary>One direction's write side: its destination socket and the segments waiting for it.</summary>
    private sealed class Lane(Socket destination, IoRegistration io, CircuitSide destinationSide, Direction direction, int segments)
    {
        public Socket Destination { get; } = destination;

        public IoRegistration Io { get; } = io;

        public CircuitSide DestinationSide { get; } = destinationSide;

        public Direction Direction { get; } = direction;

        public Queue<Segment> Queue { get; } = new(segments);

        /// <summary>The segment partly sent when the kernel was last full, or null.</summary>
        public Segment? Sending { get; set; }

        public int SendingOffset { get; set; }

        public bool EndOfStreamPending { get; set; }

        /// <summary>No more sends: the FIN went out, or the lane failed, or the circuit is resetting.</summary>
        public bool Ended { get; set; }

        /// <summary>The direction finished cleanly: every byte and then the FIN went out.</summary>
        public bool FinSent { get; set; }
    }
}
