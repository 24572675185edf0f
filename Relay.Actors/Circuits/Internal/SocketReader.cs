using System.Buffers;
using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors.Dispatch;
using Relay.Actors.Internal;

namespace Relay.Actors.Circuits.Internal;

/// <summary>
/// INTERNAL API. Reads both directions of a circuit, each from its source socket (client for
/// up, upstream for down), and hands the bytes to the circuit's <see cref="SocketWriter"/>.
/// <para>
/// One reader for both directions rather than one per direction: the directions never
/// share state, but every actor costs a cell, a mailbox, a path and the create/stop system
/// messages, and under <c>Connection: close</c> load the per-circuit actors were most of
/// the relay's user-space CPU and allocation (ops/bench/RESULTS.md). Each direction is a
/// <see cref="Lane"/> with its own window, and readiness says which lane
/// (<see cref="PumpProtocol.Ready"/>).
/// </para>
/// <para>
/// Credit-based backpressure: each lane owns a fixed set of <see cref="Segment"/>s (the
/// window) and reads only while one is free. A slow receiver keeps the segments at the
/// writer, the lane stops reading, the source's kernel buffer fills and TCP flow control
/// stops the fast sender. User-space memory per direction is therefore at most the window.
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
    private readonly IActorRef _writer;
    private readonly IActorRef _supervisor;
    private readonly CircuitCounters _counters;
    private readonly int _writeSize;

    public SocketReader(Socket client, IoRegistration clientIo, Socket upstream, IoRegistration upstreamIo, IActorRef writer,
        IActorRef supervisor, CircuitCounters counters, int writeSize, int segments)
    {
        _up = new Lane(client, clientIo, CircuitSide.Client, Direction.Up, segments);
        _down = new Lane(upstream, upstreamIo, CircuitSide.Upstream, Direction.Down, segments);
        _writer = writer;
        _supervisor = supervisor;
        _counters = counters;
        _writeSize = writeSize;
    }

    public static Props Props(Socket client, IoRegistration clientIo, Socket upstream, IoRegistration upstreamIo, IActorRef writer,
        IActorRef supervisor, CircuitCounters counters, int writeSize, int segments, string dispatcher) =>
        PropsFactory.Of(() => new SocketReader(client, clientIo, upstream, upstreamIo, writer, supervisor, counters, writeSize, segments), dispatcher);

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
                // The writer is done with these bytes: the buffer goes back to the pool at once,
                // so a circuit that goes quiet holds nothing.
                ArrayPool<byte>.Shared.Return(credit.Buffer!);
                credit.Buffer = null;
                var lane = LaneOf(credit.Direction);
                lane.Free.Push(credit);
                if (!lane.WaitingForData)
                {
                    ReadWhileCredit(lane);
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
        while (!lane.Ended && lane.Free.Count > 0)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(_writeSize);
            var read = RawSocket.Receive(lane.Source, buffer, _writeSize, out var error);
            if (error == SocketError.Success && read > 0)
            {
                var endsStream = false;
                var late = SocketError.Success;
                while (read < _writeSize && lane.Io.InputEnded)
                {
                    // The peer's FIN (or an error) is already in, and these bytes are all that
                    // precede it: collect the EOF now, so the writer can send bytes and FIN
                    // together. A Connection: close response then costs one packet less.
                    var more = RawSocket.Receive(lane.Source, buffer, read, _writeSize - read, out late);
                    if (late == SocketError.Success && more > 0)
                    {
                        read += more;
                        continue;
                    }

                    endsStream = late == SocketError.Success;
                    break;
                }

                var segment = lane.Free.Pop();
                segment.Buffer = buffer;
                segment.Length = read;
                segment.EndsStream = endsStream;
                _counters.AddRead(lane.Direction == Direction.Up, read);
                _writer.Tell(segment, Self);
                if (endsStream)
                {
                    lane.Ended = true;
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
                // EOF: the peer sent its FIN. The writer forwards it after the queued bytes.
                lane.Ended = true;
                _writer.Tell(PumpProtocol.EndOfStream.Of(lane.Direction), Self);
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
        public Lane(Socket source, IoRegistration io, CircuitSide sourceSide, Direction direction, int segments)
        {
            Source = source;
            Io = io;
            SourceSide = sourceSide;
            Direction = direction;
            Free = new Stack<Segment>(segments);
            for (var i = 0; i < segments; i++)
            {
                Free.Push(new Segment(direction));
            }
        }

        public Socket Source { get; }

        public IoRegistration Io { get; }

        public CircuitSide SourceSide { get; }

        public Direction Direction { get; }

        public Stack<Segment> Free { get; }

        public bool WaitingForData { get; set; }

        public bool Ended { get; set; }
    }
}
