using System.Buffers;
using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors.Dispatch;
using Relay.Actors.Internal;

namespace Relay.Actors.Circuits.Internal;

/// <summary>
/// INTERNAL API. Reads one direction of a circuit from its source socket and hands the
/// bytes to that direction's <see cref="SocketWriter"/>.
/// <para>
/// Credit-based backpressure: the reader owns a fixed set of <see cref="Segment"/>s (the
/// window) and reads only while one is free. A slow receiver keeps the segments at the
/// writer, the reader stops reading, the source's kernel buffer fills and TCP flow control
/// stops the fast sender. User-space memory per direction is therefore at most the window.
/// </para>
/// <para>
/// Reads are non-blocking calls made inline on the circuit's core. When the socket has
/// nothing to give, the reader asks the core's <see cref="CoreEventLoop"/> to tell it when
/// it becomes readable, holding no buffer meanwhile (the role a zero-byte receive plays in
/// YARP's StreamCopier), and the core thread's own epoll wakes it without a thread hop.
/// </para>
/// </summary>
internal sealed class SocketReader : UntypedActor
{
    private readonly Socket _source;
    private readonly CircuitSide _sourceSide;
    private readonly Direction _direction;
    private readonly IActorRef _writer;
    private readonly IActorRef _supervisor;
    private readonly CircuitCounters _counters;
    private readonly int _writeSize;
    private readonly Stack<Segment> _free;
    private readonly IoRegistration _io;
    private bool _waitingForData;
    private bool _ended;

    public SocketReader(Socket source, IoRegistration io, CircuitSide sourceSide, Direction direction, IActorRef writer,
        IActorRef supervisor, CircuitCounters counters, int writeSize, int segments)
    {
        _source = source;
        _io = io;
        _sourceSide = sourceSide;
        _direction = direction;
        _writer = writer;
        _supervisor = supervisor;
        _counters = counters;
        _writeSize = writeSize;
        _free = new Stack<Segment>(segments);
        for (var i = 0; i < segments; i++)
        {
            _free.Push(new Segment());
        }
    }

    public static Props Props(Socket source, IoRegistration io, CircuitSide sourceSide, Direction direction, IActorRef writer,
        IActorRef supervisor, CircuitCounters counters, int writeSize, int segments, string dispatcher) =>
        PropsFactory.Of(() => new SocketReader(source, io, sourceSide, direction, writer, supervisor, counters, writeSize, segments), dispatcher);

    protected override void PreStart()
    {
        if (_io.InputSeen || _io.InputEnded)
        {
            ReadWhileCredit();
        }
        else
        {
            // Nothing has arrived yet (typically the upstream side just after connect): an
            // edge will say when something does.
            WaitForData();
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
                _free.Push(credit);
                if (!_waitingForData)
                {
                    ReadWhileCredit();
                }

                break;

            case SocketReady:
                _waitingForData = false;
                ReadWhileCredit();
                break;

            default:
                Unhandled(message);
                break;
        }
    }

    private void ReadWhileCredit()
    {
        while (!_ended && _free.Count > 0)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(_writeSize);
            var read = RawSocket.Receive(_source, buffer, _writeSize, out var error);
            if (error == SocketError.Success && read > 0)
            {
                var segment = _free.Pop();
                segment.Buffer = buffer;
                segment.Length = read;
                _counters.AddRead(_direction == Direction.Up, read);
                _writer.Tell(segment, Self);
                if (read < _writeSize && !_io.InputEnded)
                {
                    // A short read drained the socket, and whatever comes next raises a new
                    // edge (edge-triggered epoll). Only once the peer's FIN or an error has been
                    // reported must the reader go on, since that edge will not come again.
                    WaitForData();
                    return;
                }

                continue;
            }

            ArrayPool<byte>.Shared.Return(buffer);
            if (error == SocketError.Success)
            {
                // EOF: the peer sent its FIN. The writer forwards it after the queued bytes.
                _ended = true;
                _writer.Tell(PumpProtocol.EndOfStream.Instance, Self);
                return;
            }

            if (error == SocketError.WouldBlock)
            {
                WaitForData();
                return;
            }

            Fail(error);
            return;
        }
    }

    private void WaitForData()
    {
        _waitingForData = true;
        _io.AwaitReadable(Self);
    }

    private void Fail(SocketError error)
    {
        if (_ended)
        {
            return;
        }

        _ended = true;
        _supervisor.Tell(new PumpProtocol.SideFailed(_sourceSide, error));
    }

}
