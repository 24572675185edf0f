using System.Buffers;
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
/// <para>
/// Like the reader, a writer serves its supervisor's circuits one after another: parked
/// (<see cref="PumpProtocol.Park"/>) when a circuit has closed, it ignores everything until
/// the next circuit's <see cref="PumpContext"/>.
/// </para>
/// </summary>
internal sealed class SocketWriter : UntypedActor
{
    private readonly IActorRef _supervisor;
    private bool _parked = true; // until the first circuit's PumpContext
    private Lane _up = null!;
    private Lane _down = null!;
    private CircuitCounters _counters = null!;
    private FinCarrier _fins = null!;
    private IActorRef _reader = ActorRefs.Nobody;
    private bool _frozen;

    private SocketWriter() => _supervisor = Context.Parent;

    /// <summary>
    /// A writer on <paramref name="dispatcher"/>, the supervisor's. As the reader, it starts as
    /// if parked, and each circuit, the first one too, comes as its <see cref="PumpContext"/>.
    /// </summary>
    public static Props Props(string dispatcher) => PropsFactory.Shared(static () => new SocketWriter(), dispatcher);

    private void Begin(PumpContext context)
    {
        _up = new Lane(context.Upstream, context.UpstreamIo, CircuitSide.Upstream, Direction.Up, context.SegmentsPerDirection);
        _down = new Lane(context.Client, context.ClientIo, CircuitSide.Client, Direction.Down, context.SegmentsPerDirection);
        _counters = context.Counters;
        _fins = context.Fins;
        _reader = ActorRefs.Nobody;
        _frozen = false;
    }

    protected override void OnReceive(object message)
    {
        if (_parked)
        {
            // Between circuits: a segment or readiness of the last circuit may still arrive.
            if (message is PumpContext next)
            {
                _parked = false;
                Begin(next);
            }

            return;
        }

        switch (message)
        {
            case PumpProtocol.Park:
                // The circuit has closed: its sockets with it, and the segments held here are of no use.
                _parked = true;
                _up.ReturnBuffers();
                _down.ReturnBuffers();
                _up = _down = null!;
                _counters = null!;
                _fins = null!;
                _reader = ActorRefs.Nobody;
                _supervisor.Tell(PumpProtocol.Parked.Instance, Self);
                break;

            case PumpContext:
                throw new InvalidOperationException("a circuit was given to a writer that had not parked");

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
                else if (lane.Sending is null && !_frozen)
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
                if (writable.Sending is { } pending && !writable.Ended && !_frozen)
                {
                    Send(writable, pending);
                }

                break;

            case PumpProtocol.EndOfStream end:
                var ending = LaneOf(end.Direction);
                ending.EndOfStreamPending = true;
                if (ending.Sending is null && !_frozen)
                {
                    FinishIfDrained(ending);
                }

                break;

            case PumpProtocol.Freeze:
                // Every segment the reader sent before this is in the lanes: what they hold,
                // the partly sent one first, is what each destination is still owed.
                _frozen = true;
                Sender.Tell(new PumpProtocol.WriterFrozen(_up.Unsent(), _down.Unsent()), Self);
                break;

            case PumpProtocol.Thaw:
                _frozen = false;
                Resume(_up);
                Resume(_down);
                break;

            default:
                Unhandled(message);
                break;
        }
    }

    private Lane LaneOf(Direction direction) => direction == Direction.Up ? _up : _down;

    /// <summary>After a thaw: a lane goes on with its partly sent segment (a writable edge while frozen was not acted on), or ends if it had drained.</summary>
    private void Resume(Lane lane)
    {
        if (lane.Ended)
        {
            return;
        }

        if (lane.Sending is { } pending)
        {
            Send(lane, pending);
        }
        else if (lane.Queue.TryDequeue(out var next))
        {
            Send(lane, next);
        }
        else
        {
            FinishIfDrained(lane);
        }
    }

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
    private sealed class Lane(SafeSocketHandle destination, IoRegistration io, CircuitSide destinationSide, Direction direction, int segments)
    {
        public SafeSocketHandle Destination { get; } = destination;

        public IoRegistration Io { get; } = io;

        public CircuitSide DestinationSide { get; } = destinationSide;

        public Direction Direction { get; } = direction;

        public Queue<Segment> Queue { get; } = new(segments);

        /// <summary>The segment partly sent when the kernel was last full, or null.</summary>
        public Segment? Sending { get; set; }


        public bool EndOfStreamPending { get; set; }

        /// <summary>A copy of every byte this lane still owes its destination, in order.</summary>
        public byte[] Unsent()
        {
            var segments = new List<Segment>(Queue.Count + 1);
            if (Sending is { } sending)
            {
                segments.Add(sending);
            }

            segments.AddRange(Queue);
            return Segment.Unsent(segments);
        }

        /// <summary>No more sends: the FIN went out, or the lane failed, or the circuit is resetting.</summary>
        public bool Ended { get; set; }

        /// <summary>The circuit has closed: the buffers of the segments still held go back to the pool.</summary>
        public void ReturnBuffers()
        {
            foreach (var segment in Queue)
            {
                Return(segment);
            }

            Queue.Clear();
            if (Sending is { } sending)
            {
                Return(sending);
                Sending = null;
            }
        }

        private static void Return(Segment segment)
        {
            if (segment.Buffer is { } buffer)
            {
                segment.Buffer = null;
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }
}
