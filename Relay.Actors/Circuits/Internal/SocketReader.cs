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
/// <para>
/// A bulk direction goes through the kernel: once a read fills a whole write-size, and the
/// route allows it (<c>splice</c>), the lane moves its bytes with splice(2) through a pipe
/// of its own (<see cref="SplicePipe"/>), source to pipe to destination, and they never enter
/// user space. The pipe is the lane's window then: the lane reads while the pipe has room, and
/// waits for its destination's room (<see cref="PumpProtocol.Room"/>) itself, as the writer
/// would. Short exchanges never fill a read, and never pay for a pipe.
/// </para>
/// <para>
/// A reader serves its supervisor's circuits one after another: told
/// <see cref="PumpProtocol.Park"/> when a circuit has closed, it lets go of that circuit and
/// ignores everything until the next circuit's <see cref="PumpStart"/>.
/// </para>
/// </summary>
internal sealed class SocketReader : UntypedActor
{
    // The supervisor's, and so the same for every circuit this reader serves.
    private readonly IActorRef _supervisor;
    private bool _parked = true; // until the first circuit's PumpStart
    // The circuit's, copied from its context: read on every chunk.
    private CircuitCounters _counters = null!;
    private FinCarrier _fins = null!;
    private int _writeSize;
    private int _window; // a lane's, in segments: the same for both
    private bool _splice;
    private Lane _up = null!;
    private Lane _down = null!;
    private bool _restored;
    private IActorRef? _writer;
    private Queue<object>? _forWriter; // what waits for the writer the supervisor is starting
    private PumpFreeze _freeze;

    private SocketReader() => _supervisor = Context.Parent;

    /// <summary>
    /// A reader on <paramref name="dispatcher"/>, the supervisor's. It starts as if parked: each
    /// circuit, the first one too, comes as a <see cref="PumpStart"/> message (a restored
    /// circuit's reader first owes each destination its seed, and then, for a direction whose
    /// source had ended, its FIN). So the Props carry no circuit, and all readers share them.
    /// </summary>
    public static Props Props(string dispatcher) => PropsFactory.Shared(static () => new SocketReader(), dispatcher);

    private void Begin(PumpStart start)
    {
        var context = start.Context;
        _restored = start.Restored;
        _counters = context.Counters;
        _fins = context.Fins;
        _writeSize = context.WriteSize;
        _splice = context.Splice;
        _window = context.SegmentsPerDirection;
        _up = new Lane(context.Client, context.ClientIo, Direction.Up);
        _down = new Lane(context.Upstream, context.UpstreamIo, Direction.Down);
        // A direction over already goes first, so that the FinCarrier knows which end is the
        // circuit's last before an owed FIN is carried below.
        EndBeforeStart(_up, start.Up, DirectionEnd.FinCarried);
        EndBeforeStart(_down, start.Down, DirectionEnd.FinCarried);
        Seed(_up, start.SeedUp);
        Seed(_down, start.SeedDown);
        EndBeforeStart(_up, start.Up, DirectionEnd.FinOwed);
        EndBeforeStart(_down, start.Down, DirectionEnd.FinOwed);
        Start(_up);
        Start(_down);
    }

    /// <summary>
    /// The circuit has closed: drop it (its sockets are closed, and what waited for the writer
    /// is of no use), answer the supervisor, and ignore everything until the next circuit. Every
    /// message this reader sent for the old circuit is ahead of the answer.
    /// </summary>
    private void Park()
    {
        _parked = true;
        _up.ClosePipe();
        _down.ClosePipe();
        _up = _down = null!;
        _counters = null!;
        _fins = null!;
        _writer = null;
        _forWriter = null;
        _freeze = PumpFreeze.None;
        _supervisor.Tell(PumpProtocol.Parked.Instance, Self);
    }

    /// <summary>
    /// A restored direction whose source had ended on the old node (its EOF read there, so the
    /// restored source socket gives no more bytes) is never read here. One whose FIN was carried
    /// is over; one whose FIN is owed ends as if its EOF had just been read, behind the owed
    /// bytes just seeded: inline when none wait for the writer, else after them.
    /// </summary>
    private void EndBeforeStart(Lane lane, DirectionEnd end, DirectionEnd which)
    {
        if (end != which || lane.Ended)
        {
            return; // not this end, or the destination failed while the owed bytes were seeded
        }

        lane.Ended = true;
        if (end == DirectionEnd.FinCarried)
        {
            _fins.MarkFinished(lane.Direction);
        }
        else
        {
            EndOfSource(lane);
        }
    }

    /// <summary>
    /// A restored circuit's bytes owed to a destination go out first, through the lane's own
    /// path (inline, or to the writer when the destination is full), so every byte read later
    /// queues behind them and the lane's window throttles reading until they are out.
    /// </summary>
    private void Seed(Lane lane, ReadOnlyMemory<byte> bytes)
    {
        while (!bytes.IsEmpty && !lane.Ended)
        {
            var length = Math.Min(bytes.Length, _writeSize);
            var segment = lane.Take();
            segment.Buffer = ArrayPool<byte>.Shared.Rent(_writeSize);
            bytes.Span[..length].CopyTo(segment.Buffer);
            segment.Length = length;
            segment.Offset = 0;
            segment.EndsStream = false;
            bytes = bytes[length..];
            Forward(lane, segment);
        }
    }

    private void Start(Lane lane)
    {
        if (lane.Ended)
        {
            return;
        }

        if (lane.Io.InputSeen || lane.Io.InputEnded || _restored)
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

    protected override void PostStop()
    {
        // Stopped with a circuit (a failure, the node stopping): its pipes are descriptors too.
        if (!_parked)
        {
            _up?.ClosePipe();
            _down?.ClosePipe();
        }
    }

    protected override void OnReceive(object message)
    {
        if (_parked)
        {
            // Between circuits: only the next one counts. A credit, readiness or turn of the
            // last circuit may still arrive here, and means nothing now.
            if (message is PumpStart next)
            {
                _parked = false;
                Begin(next);
            }

            return;
        }

        switch (message)
        {
            case PumpStart:
                throw new InvalidOperationException("a circuit was given to a reader that had not parked");

            case PumpProtocol.Park:
                Park();
                break;

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
                if (_freeze == PumpFreeze.None)
                {
                    FlushToWriter();
                }

                break;

            case PumpProtocol.Ready ready:
                var readable = LaneOf(ready.Direction);
                readable.WaitingForData = false;
                ReadWhileCredit(readable);
                break;

            case PumpProtocol.Room room:
                var roomy = LaneOf(room.Direction);
                roomy.WaitingForRoom = false;
                ReadWhileCredit(roomy);
                break;

            case PumpProtocol.Freeze:
                Freeze();
                break;

            case PumpProtocol.WriterFrozen writerFrozen:
                _freeze = PumpFreeze.Frozen;
                _supervisor.Tell(new PumpProtocol.PumpsFrozen(Owed(_up, writerFrozen.ToUpstream), Owed(_down, writerFrozen.ToClient), EndOf(_up),
                    EndOf(_down)), Self);
                break;

            case PumpProtocol.Thaw:
                Thaw();
                break;

            default:
                Unhandled(message);
                break;
        }
    }

    private Lane LaneOf(Direction direction) => direction == Direction.Up ? _up : _down;

    /// <summary>Where <paramref name="lane"/>'s bytes go: the other lane's source.</summary>
    private SafeSocketHandle DestinationOf(Lane lane) => (lane == _up ? _down : _up).Source;

    private void FlushToWriter()
    {
        while (_forWriter is not null && _forWriter.TryDequeue(out var waiting))
        {
            _writer!.Tell(waiting, Self);
        }
    }

    /// <summary>
    /// Stops reading (the supervisor is handing the circuit over, or pausing it to): no byte
    /// leaves a source socket from now on, so the kernel's queues and what the pumps hold are
    /// the whole of each direction's unsent bytes. The writer stops too, after every segment
    /// already sent to it (this reader tells it, behind them), and the supervisor hears once
    /// from this reader what both hold, in order.
    /// </summary>
    private void Freeze()
    {
        if (_freeze != PumpFreeze.None)
        {
            throw new InvalidOperationException("the pumps were asked to freeze twice");
        }

        // A spliced direction's unsent bytes are in its pipe, which cannot be read without
        // being emptied: they come out now, and a thaw sends them on first.
        _up.TakeFromPipe();
        _down.TakeFromPipe();

        if (_writer is null)
        {
            // No writer yet: whatever waits for one (the writer may be starting) is all the
            // pumps hold, and it stays here until a thaw.
            _freeze = PumpFreeze.Frozen;
            _supervisor.Tell(new PumpProtocol.PumpsFrozen(Owed(_up, Held(Direction.Up)), Owed(_down, Held(Direction.Down)), EndOf(_up), EndOf(_down)),
                Self);
            return;
        }

        _freeze = PumpFreeze.WaitingForWriter;
        _writer.Tell(PumpProtocol.Freeze.Instance, Self);
    }

    private DirectionEnd EndOf(Lane lane) => _fins.EndOf(lane.Direction, lane.Ended);

    /// <summary>
    /// What <paramref name="lane"/>'s destination is still owed: <paramref name="queued"/> (the
    /// writer's, or what waits for it) and then what was taken from its pipe. A direction is
    /// spliced only while the writer holds none of its bytes, so one of the two is empty.
    /// </summary>
    private static byte[] Owed(Lane lane, byte[] queued) =>
        lane.FromPipe is not { Length: > 0 } piped ? queued
        : queued.Length == 0 ? piped
        : [.. queued, .. piped];

    /// <summary>The bytes of <paramref name="direction"/> waiting here for the writer, in order.</summary>
    private byte[] Held(Direction direction)
    {
        if (_forWriter is null)
        {
            return [];
        }

        var held = new List<Segment>();
        foreach (var message in _forWriter)
        {
            if (message is Segment segment && segment.Direction == direction)
            {
                held.Add(segment);
            }
        }

        return Segment.Unsent(held);
    }

    /// <summary>The freeze is called off (a handover rolled back): both pumps go on where they stopped.</summary>
    private void Thaw()
    {
        _freeze = PumpFreeze.None;
        foreach (var lane in (ReadOnlySpan<Lane>)[_up, _down])
        {
            if (lane.FromPipe is { } piped)
            {
                // Ahead of anything read from now on: inline, or to the writer if the destination
                // is full. A source that had ended owes its FIN after them, as a restored one does.
                lane.FromPipe = null;
                var sourceEnded = lane.Ended;
                lane.Ended = false;
                Seed(lane, piped);
                if (sourceEnded)
                {
                    lane.ClosePipe();
                    if (!lane.Ended)
                    {
                        lane.Ended = true;
                        EndOfSource(lane);
                    }
                }
            }
        }

        if (_writer is not null)
        {
            FlushToWriter();
            _writer.Tell(PumpProtocol.Thaw.Instance, Self);
        }

        foreach (var lane in (ReadOnlySpan<Lane>)[_up, _down])
        {
            if (!lane.Ended && !lane.WaitingForData)
            {
                ReadWhileCredit(lane);
            }
        }
    }

    private void ReadWhileCredit(Lane lane)
    {
        if (_freeze != PumpFreeze.None)
        {
            return;
        }

        if (lane.Pipe is not null && lane.AtWriter == 0)
        {
            SpliceWhileReady(lane);
            return;
        }

        // A turn moves at most a window of chunks, as it did when every chunk went through the
        // writer and credit ran out. With inline writes the credit comes straight back, so
        // without this a fast source and a destination with room would keep the core thread
        // in one circuit, and the core's other circuits (and its epoll) would wait.
        var turn = _window;
        // The lane has credit while fewer than the window of its segments are at the writer.
        // Segments are made as first needed, so a lane whose destination keeps up only ever makes one.
        while (!lane.Ended && lane.AtWriter < _window)
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

                if (read == _writeSize && TryStartSplicing(lane))
                {
                    SpliceWhileReady(lane);
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
                // EOF: the peer sent its FIN.
                lane.Ended = true;
                EndOfSource(lane);
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
    /// A read filled a whole write-size: a bulk transfer, which goes on through a pipe, unless
    /// the route says no, the writer still holds bytes of this direction (they go first), or no
    /// pipe can be had (then it goes on copying).
    /// </summary>
    private bool TryStartSplicing(Lane lane)
    {
        if (!_splice || lane.Pipe is not null || lane.AtWriter != 0)
        {
            return false;
        }

        // The pipe holds the lane's window, as the writer would (at most 1 MiB, pipe-max-size for
        // a process without CAP_SYS_RESOURCE): a pipe of one read's size halved the rate of 8
        // streams, each direction stopping its reads whenever its destination was full.
        lane.Pipe = SplicePipe.TryCreate(Math.Min(_window * _writeSize, 1 << 20));
        return lane.Pipe is not null;
    }

    /// <summary>
    /// The spliced path: moves what the pipe holds to the destination, and fills the pipe from
    /// the source while it has room, until both wait: the source for data, the destination for
    /// room (while it is full the lane still reads, as long as the pipe has room, so the
    /// source's window stays open), or the pipe is full. The source's EOF goes into the lane as
    /// the copy path's does (<see cref="Lane.Ended"/>), and the FIN follows the pipe's last
    /// byte. A turn is bounded as a read turn is.
    /// </summary>
    private void SpliceWhileReady(Lane lane)
    {
        var pipe = lane.Pipe!;
        var up = lane.Direction == Direction.Up;
        var turn = _window;
        while (true)
        {
            while (lane.InPipe > 0 && !lane.WaitingForRoom)
            {
                var sent = pipe.DrainTo(DestinationOf(lane), lane.InPipe, out var sendError);
                if (sendError == SocketError.Success)
                {
                    lane.InPipe -= sent;
                    _counters.AddSpliced(up, sent, Environment.TickCount64);
                }
                else if (sendError == SocketError.WouldBlock)
                {
                    lane.WaitingForRoom = true;
                    // The destination is the other lane's source: its registration, whose write wait is
                    // this lane's while it splices (the writer holds none of its bytes).
                    (lane == _up ? _down : _up).Io.AwaitWritable(Self, PumpProtocol.Room.Of(lane.Direction));
                }
                else
                {
                    // As for an inline send: a closed socket means the supervisor is ending it already.
                    lane.ClosePipe();
                    lane.Ended = true;
                    if (sendError != SocketError.OperationAborted)
                    {
                        _supervisor.Tell(new PumpProtocol.SideFailed(lane.DestinationSide, sendError));
                    }

                    return;
                }
            }

            if (lane.Ended)
            {
                if (lane.InPipe == 0)
                {
                    // The source's EOF is behind the pipe's last byte: the FIN follows now.
                    lane.ClosePipe();
                    EndOfSource(lane);
                }

                return;
            }

            if (lane.WaitingForData || lane.InPipe >= pipe.Capacity)
            {
                return;
            }

            if (turn-- == 0)
            {
                Self.Tell(PumpProtocol.Ready.Of(lane.Direction), Self);
                return;
            }

            var moved = pipe.FillFrom(lane.Source, pipe.Capacity - lane.InPipe, out var error);
            if (error == SocketError.Success && moved > 0)
            {
                lane.InPipe += moved;
                _counters.AddRead(up, moved);
            }
            else if (error == SocketError.Success)
            {
                lane.Ended = true; // EOF
            }
            else if (error == SocketError.WouldBlock && lane.InPipe > 0)
            {
                // EAGAIN from a pipe that holds bytes may mean the pipe is full: it counts slots,
                // one per received fragment, not bytes. Waiting for data here would wait for an
                // edge that a sender whose window is closed never raises; the destination's room
                // drains the pipe, and the lane fills again then (EAGAIN from an empty pipe is
                // the one that means no data).
                if (!lane.WaitingForRoom)
                {
                    continue;
                }

                return;
            }
            else if (error == SocketError.WouldBlock)
            {
                WaitForData(lane);
            }
            else
            {
                lane.ClosePipe();
                Fail(lane, error);
                return;
            }
        }
    }

    /// <summary>The lane's source has ended: its FIN goes on now, or after the writer's backlog.</summary>
    private void EndOfSource(Lane lane)
    {
        if (lane.AtWriter == 0)
        {
            _fins.Finish(lane.Direction, DestinationOf(lane), lane.DestinationSide);
        }
        else
        {
            ToWriter(PumpProtocol.EndOfStream.Of(lane.Direction));
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
            var error = segment.SendRest(DestinationOf(lane), _counters);
            if (error == SocketError.Success)
            {
                var endsStream = segment.EndsStream;
                lane.Recycle(segment);
                if (endsStream)
                {
                    _fins.Finish(lane.Direction, DestinationOf(lane), lane.DestinationSide);
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

    private enum PumpFreeze
    {
        None,
        WaitingForWriter,
        Frozen,
    }

    /// <summary>
    /// One direction's read side: its source socket and what it has at the writer, or its pipe.
    /// What the direction implies (its sides, its destination: the other lane's source) and what
    /// both lanes share (the window) is not kept here: a lane is per circuit, idle ones too.
    /// </summary>
    private sealed class Lane(SafeSocketHandle source, IoRegistration io, Direction direction)
    {

        /// <summary>
        /// The lane's pipe once it splices (null until a read fills a write-size). What a spliced
        /// lane keeps besides lives in the pipe object, so a lane that never splices (most, and
        /// every idle one) pays one field for it.
        /// </summary>
        public SplicePipe? Pipe { get; set; }

        /// <summary>Bytes in <see cref="Pipe"/> not yet in the destination's kernel queue.</summary>
        public int InPipe
        {
            get => Pipe?.Held ?? 0;
            set => Pipe!.Held = value;
        }

        /// <summary>The destination was full with bytes still in the pipe: the lane waits for room (besides data, maybe).</summary>
        public bool WaitingForRoom
        {
            get => Pipe?.WaitingForRoom ?? false;
            set
            {
                if (Pipe is not null)
                {
                    Pipe.WaitingForRoom = value;
                }
            }
        }

        /// <summary>While frozen: the bytes taken out of the pipe, owed to the destination first after a thaw.</summary>
        public byte[]? FromPipe
        {
            get => Pipe?.Taken;
            set
            {
                if (Pipe is not null)
                {
                    Pipe.Taken = value;
                }
            }
        }

        public void TakeFromPipe()
        {
            if (Pipe is not null && InPipe > 0)
            {
                FromPipe = Pipe.Take(InPipe);
                InPipe = 0;
                // Nothing waits in the pipe for room now; after a thaw these bytes go the plain
                // way, and the writer may take the destination's writable wait over.
                WaitingForRoom = false;
            }
        }

        public void ClosePipe()
        {
            Pipe?.Dispose();
            Pipe = null;
        }

        public SafeSocketHandle Source { get; } = source;

        public IoRegistration Io { get; } = io;

        public CircuitSide SourceSide => Direction == Direction.Up ? CircuitSide.Client : CircuitSide.Upstream;

        public CircuitSide DestinationSide => Direction == Direction.Up ? CircuitSide.Upstream : CircuitSide.Client;

        /// <summary>Segments of this direction at the writer: while any are, new bytes queue behind them.</summary>
        public int AtWriter { get; set; }

        public Direction Direction { get; } = direction;

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
                (_moreHome ??= new Stack<Segment>()).Push(segment);
            }
        }

        public bool WaitingForData { get; set; }

        public bool Ended { get; set; }
    }
}
