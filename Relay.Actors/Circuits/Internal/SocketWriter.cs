using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors.Dispatch;
using Relay.Actors.Internal;

namespace Relay.Actors.Circuits.Internal;

/// <summary>
/// INTERNAL API. A circuit's write backlog: the bytes of each direction that its destination
/// socket (upstream for up, client for down) could not take when the reader had them. The
/// reader writes inline while the destination keeps up, which is the common case; once a
/// send would block, that direction's segments come here, in order, until the backlog is
/// drained. Each <see cref="Segment"/> goes back to the reader as credit once its bytes are in
/// the kernel, and a source's FIN that arrives behind a backlog is carried on after that
/// direction's last byte (RFC 9293 §3.6: a FIN ends one direction only; the other keeps
/// flowing). Like <see cref="SocketReader"/>, one actor with a <see cref="Lane"/> per direction.
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
    private readonly FinCarrier _fins;
    private IActorRef _reader = ActorRefs.Nobody;

    public SocketWriter(Socket upstream, IoRegistration upstreamIo, Socket client, IoRegistration clientIo,
        IActorRef supervisor, CircuitCounters counters, FinCarrier fins, int segments)
    {
        _up = new Lane(upstream, upstreamIo, CircuitSide.Upstream, Direction.Up, segments);
        _down = new Lane(client, clientIo, CircuitSide.Client, Direction.Down, segments);
        _supervisor = supervisor;
        _counters = counters;
        _fins = fins;
    }

    public static Props Props(Socket upstream, IoRegistration upstreamIo, Socket client, IoRegistration clientIo,
        IActorRef supervisor, CircuitCounters counters, FinCarrier fins, int segments, string dispatcher) =>
        PropsFactory.Of(() => new SocketWriter(upstream, upstreamIo, client, clientIo, supervisor, counters, fins, segments), dispatcher);

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
                    // The reader may have written the segment's head inline already.
                    Send(lane, segment);
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
                    Send(writable, pending);
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

    /// <summary>Sends inline until done, or until the kernel is full and the lane waits for room.</summary>
    private void Send(Lane lane, Segment segment)
    {
        while (true)
        {
            var error = segment.SendRest(lane.Destination, _counters);
            if (error == SocketError.Success)
            {
                _reader.Tell(segment, Self);
                if (!lane.Queue.TryDequeue(out var next))
                {
                    lane.Sending = null;
                    FinishIfDrained(lane);
                    return;
                }

                segment = next;
                continue;
            }

            lane.Sending = segment;
            if (error == SocketError.WouldBlock)
            {
                lane.Io.AwaitWritable(Self, PumpProtocol.Ready.Of(lane.Direction));
                return;
            }

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
        _fins.Finish(lane.Direction, lane.Destination, lane.DestinationSide);
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


        public bool EndOfStreamPending { get; set; }

        /// <summary>No more sends: the FIN went out, or the lane failed, or the circuit is resetting.</summary>
        public bool Ended { get; set; }
    }
}
