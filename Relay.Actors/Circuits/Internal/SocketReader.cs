using System.Buffers;
using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors.Dispatch;
using Relay.Actors.Internal;
using Relay.Actors.Sockets;

namespace Relay.Actors.Circuits.Internal;

/// <summary>
/// INTERNAL API. Pumps both directions of a circuit: reads each from its source socket (client
/// for up, upstream for down) and writes the bytes to its destination inline, as long as the
/// destination takes them and the circuit's <see cref="SocketWriter"/> holds none of that
/// direction's earlier bytes. Bytes a destination cannot take at once go to the writer, which
/// waits for room; until the writer has handed every such segment back, later bytes of that
/// direction queue behind them there, so the order holds.
/// <para>
/// Writing inline rather than always through the writer saves two messages per chunk (the
/// segment and its credit): a keep-alive request and its response are four messages fewer.
/// And the writer is started only when a destination first falls behind (the reader asks
/// the supervisor, and holds that direction's bytes until the writer is there): most short
/// circuits never need one, and each actor costs its cell, mailbox, path and create/stop
/// system messages.
/// </para>
/// <para>
/// One reader for both directions rather than one per direction: the directions never
/// share state, but every actor costs a cell, a mailbox, a path and the create/stop system
/// messages, and under <c>Connection: close</c> load the per-circuit actors were most of
/// the relay's user-space CPU and allocation (ops/bench/RESULTS.md). Each direction is a
/// <see cref="Lane"/> with its own window, and readiness says which lane
/// (<see cref="PumpProtocol.Ready"/>).
/// </para>
/// <para>
/// Credit-based backpressure: each lane may have at most <c>window / write-size</c>
/// <see cref="Segment"/>s (the window) at the writer, and reads only while it has fewer. A
/// slow receiver keeps the segments at the writer, the lane stops reading, the source's
/// kernel buffer fills and TCP flow control stops the fast sender. User-space memory per
/// direction is therefore at most the window. Segments are made as first needed.
/// </para>
/// <para>
/// Reads are non-blocking calls made inline on the circuit's core. When a socket has
/// nothing to give, its lane asks the core's <see cref="CoreEventLoop"/> to tell it when it
/// becomes readable, holding no buffer meanwhile (the role a zero-byte receive plays in
/// YARP's StreamCopier), and the core thread's own epoll wakes it without a thread hop.
/// </para>
/// </summary>
internal sealed class SocketReader : UntypedActor
{
    private readonly Lane _up;
    private readonly Lane _down;
    private IActorRef? _writer;
    private Queue<object>? _forWriter; // what waits for the writer the supervisor is starting
    private readonly IActorRef _supervisor;
    private readonly CircuitCounters _counters;
    private readonly FinCarrier _fins;
    private readonly int _writeSize;

    public SocketReader(Socket client, IoRegistration clientIo, Socket upstream, IoRegistration upstreamIo,
        IActorRef supervisor, CircuitCounters counters, FinCarrier fins, int writeSize, int segments)
    {
        _up = new Lane(client, clientIo, CircuitSide.Client, upstream, CircuitSide.Upstream, Direction.Up, segments);
        _down = new Lane(upstream, upstreamIo, CircuitSide.Upstream, client, CircuitSide.Client, Direction.Down, segments);
        _supervisor = supervisor;
        _counters = counters;
        _fins = fins;
        _writeSize = writeSize;
    }

    public static Props Props(Socket client, IoRegistration clientIo, Socket upstream, IoRegistration upstreamIo,
        IActorRef supervisor, CircuitCounters counters, FinCarrier fins, int writeSize, int segments, string dispatcher) =>
        PropsFactory.Of(() => new SocketReader(client, clientIo, upstream, upstreamIo, supervisor, counters, fins, writeSize, segments),
            dispatcher);

    protected override void PreStart()
    {
        Start(_up);
        Start(_down);
    }

    private void Start(Lane lane)
    {
        if (lane.Io.InputSeen || lane.Io.InputEnded)
        {
            ReadWhileCredit(lane);
        }
        else
        {
            // Nothing has arrived yet (typically the upstream side just after connect): an
            // edge will say when something does.
            WaitForData(lane);
        }
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case Segment credit:
                // The writer is done with these bytes.
                var lane = LaneOf(credit.Direction);
                lane.AtWriter--;
                lane.Recycle(credit);
                if (!lane.WaitingForData)
                {
                    ReadWhileCredit(lane);
                }

                break;

            case PumpProtocol.WriterStarted started:
                _writer = started.Writer;
                while (_forWriter!.TryDequeue(out var waiting))
                {
                    _writer.Tell(waiting, Self);
                }

                break;

            case PumpProtocol.Ready ready:
                var readable = LaneOf(ready.Direction);
                readable.WaitingForData = false;
                ReadWhileCredit(readable);
                break;

            default:
                Unhandled(message);
                break;
        }
    }

    private Lane LaneOf(Direction direction) => direction == Direction.Up ? _up : _down;

    private void ReadWhileCredit(Lane lane)
    {
        // A turn moves at most a window of chunks, as it did when every chunk went through the
        // writer and credit ran out. With inline writes the credit comes straight back, so
        // without this a fast source and a destination with room would keep the core thread
        // in one circuit, and the core's other circuits (and its epoll) would wait.
        var turn = lane.Window;
        while (!lane.Ended && lane.HasCredit)
        {
            if (turn-- == 0)
            {
                Self.Tell(PumpProtocol.Ready.Of(lane.Direction), Self);
                return;
            }

            var buffer = ArrayPool<byte>.Shared.Rent(_writeSize);
            var read = RawSocket.Receive(lane.Source, buffer, _writeSize, out var error);
            if (error == SocketError.Success && read > 0)
            {
                var endsStream = false;
                var late = SocketError.Success;
                while (read < _writeSize && lane.Io.InputEnded)
                {
                    // The peer's FIN (or an error) is already in, and these bytes are all that
                    // precede it: collect the EOF now, so the bytes and the FIN leave together
                    // (see Forward). A Connection: close response then costs one packet less.
                    var more = RawSocket.Receive(lane.Source, buffer, read, _writeSize - read, out late);
                    if (late == SocketError.Success && more > 0)
                    {
                        read += more;
                        continue;
                    }

                    endsStream = late == SocketError.Success;
                    break;
                }

                var segment = lane.Take();
                segment.Buffer = buffer;
                segment.Length = read;
                segment.Offset = 0;
                segment.EndsStream = endsStream;
                _counters.AddRead(lane.Direction == Direction.Up, read);
                if (endsStream)
                {
                    lane.Ended = true;
                }

                if (!Forward(lane, segment) || endsStream)
                {
                    return;
                }

                if (late is not SocketError.Success and not SocketError.WouldBlock)
                {
                    Fail(lane, late);
                    return;
                }

                if (read < _writeSize && !lane.Io.InputEnded)
                {
                    // A short read drained the socket, and whatever comes next raises a new
                    // edge (edge-triggered epoll). Only once the peer's FIN or an error has been
                    // reported must the lane go on, since that edge will not come again.
                    WaitForData(lane);
                    return;
                }

                continue;
            }

            ArrayPool<byte>.Shared.Return(buffer);
            if (error == SocketError.Success)
            {
                // EOF: the peer sent its FIN. It goes on now, or after the writer's backlog.
                lane.Ended = true;
                if (lane.AtWriter == 0)
                {
                    _fins.Finish(lane.Direction, lane.Destination, lane.DestinationSide);
                }
                else
                {
                    ToWriter(PumpProtocol.EndOfStream.Of(lane.Direction));
                }

                return;
            }

            if (error == SocketError.WouldBlock)
            {
                WaitForData(lane);
                return;
            }

            Fail(lane, error);
            return;
        }
    }

    /// <summary>
    /// Writes the segment to the lane's destination inline when the writer holds nothing of
    /// this direction; what the destination does not take (or all of it, behind a backlog)
    /// goes to the writer. False when the destination failed and the lane has ended.
    /// </summary>
    private bool Forward(Lane lane, Segment segment)
    {
        if (lane.AtWriter == 0)
        {
            var error = segment.SendRest(lane.Destination, _counters);
            if (error == SocketError.Success)
            {
                var endsStream = segment.EndsStream;
                lane.Recycle(segment);
                if (endsStream)
                {
                    _fins.Finish(lane.Direction, lane.Destination, lane.DestinationSide);
                }

                return true;
            }

            if (error != SocketError.WouldBlock)
            {
                // The destination failed (a reset, usually): the circuit is reset. A closed
                // socket (OperationAborted) means the supervisor is ending it already.
                lane.Recycle(segment);
                lane.Ended = true;
                if (error != SocketError.OperationAborted)
                {
                    _supervisor.Tell(new PumpProtocol.SideFailed(lane.DestinationSide, error));
                }

                return false;
            }
        }

        lane.AtWriter++;
        ToWriter(segment);
        return true;
    }

    /// <summary>To the writer, in order; the first message asks the supervisor to start one.</summary>
    private void ToWriter(object message)
    {
        if (_writer is not null)
        {
            _writer.Tell(message, Self);
            return;
        }

        if (_forWriter is null)
        {
            _forWriter = new Queue<object>();
            _supervisor.Tell(PumpProtocol.WriterWanted.Instance, Self);
        }

        _forWriter.Enqueue(message);
    }

    private void WaitForData(Lane lane)
    {
        lane.WaitingForData = true;
        lane.Io.AwaitReadable(Self, PumpProtocol.Ready.Of(lane.Direction));
    }

    private void Fail(Lane lane, SocketError error)
    {
        if (lane.Ended)
        {
            return;
        }

        lane.Ended = true;
        _supervisor.Tell(new PumpProtocol.SideFailed(lane.SourceSide, error));
    }

    /// <summary>One direction's read side: its source socket and its window of credits.</summary>
    private sealed class Lane
    {
        public Lane(Socket source, IoRegistration io, CircuitSide sourceSide, Socket destination, CircuitSide destinationSide,
            Direction direction, int segments)
        {
            Source = source;
            Io = io;
            SourceSide = sourceSide;
            Destination = destination;
            DestinationSide = destinationSide;
            Direction = direction;
            Window = segments;
        }

        public Socket Source { get; }

        public IoRegistration Io { get; }

        public CircuitSide SourceSide { get; }

        public Socket Destination { get; }

        public CircuitSide DestinationSide { get; }

        /// <summary>Segments of this direction at the writer: while any are, new bytes queue behind them.</summary>
        public int AtWriter { get; set; }

        public Direction Direction { get; }

        /// <summary>How many segments (credits) the lane owns.</summary>
        public int Window { get; }

        /// <summary>
        /// Whether the lane may read: fewer than <see cref="Window"/> of its segments are at
        /// the writer. Segments are made as first needed, so a lane whose destination keeps up
        /// only ever makes one.
        /// </summary>
        public bool HasCredit => AtWriter < Window;

        private Segment? _home;
        private Stack<Segment>? _moreHome;

        /// <summary>A free segment: one back from the writer, or a new one (never more than the window in all).</summary>
        public Segment Take()
        {
            if (_home is { } segment)
            {
                _home = null;
                return segment;
            }

            return _moreHome is { Count: > 0 } more ? more.Pop() : new Segment(Direction);
        }

        /// <summary>
        /// A segment's bytes are in the kernel (written inline, or handed back by the writer):
        /// its buffer goes back to the pool at once, so a circuit that goes quiet holds none,
        /// and the segment is free again.
        /// </summary>
        public void Recycle(Segment segment)
        {
            ArrayPool<byte>.Shared.Return(segment.Buffer!);
            segment.Buffer = null;
            if (_home is null)
            {
                _home = segment;
            }
            else
            {
                (_moreHome ??= new Stack<Segment>(Window)).Push(segment);
            }
        }

        public bool WaitingForData { get; set; }

        public bool Ended { get; set; }
    }
}
