using System.Buffers;
using System.Net.Sockets;
using Akka.Actor;
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
/// Reads are non-blocking calls made inline on the circuit's core. Only when the socket has
/// nothing to give does the reader arm a zero-byte receive, which waits for data without
/// holding any buffer (YARP's StreamCopier does the same).
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
    private readonly ActorSocketEventArgs _readable;
    private bool _waitingForData;
    private bool _ended;

    public SocketReader(Socket source, CircuitSide sourceSide, Direction direction, IActorRef writer,
        IActorRef supervisor, CircuitCounters counters, int writeSize, int segments)
    {
        _source = source;
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

        _readable = new ActorSocketEventArgs(Self);
        _readable.SetBuffer(Memory<byte>.Empty);
    }

    public static Props Props(Socket source, CircuitSide sourceSide, Direction direction, IActorRef writer,
        IActorRef supervisor, CircuitCounters counters, int writeSize, int segments) =>
        PropsFactory.Of(() => new SocketReader(source, sourceSide, direction, writer, supervisor, counters, writeSize, segments));

    protected override void PreStart() => ReadWhileCredit();

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

            case PumpProtocol.IoCompleted:
                _waitingForData = false;
                if (_readable.SocketError != SocketError.Success)
                {
                    Fail(_readable.SocketError);
                }
                else
                {
                    ReadWhileCredit();
                }

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
            var read = _source.Receive(buffer, 0, _writeSize, SocketFlags.None, out var error);
            if (error == SocketError.Success && read > 0)
            {
                var segment = _free.Pop();
                segment.Buffer = buffer;
                segment.Length = read;
                _counters.AddRead(_direction == Direction.Up, read);
                _writer.Tell(segment, Self);
                if (read < _writeSize)
                {
                    // A short read emptied the socket: another recv would only say EAGAIN.
                    // Wait for more (or for the FIN) without that wasted system call.
                    ArmZeroByteReceive();
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
                ArmZeroByteReceive();
                return;
            }

            Fail(error);
            return;
        }
    }

    private void ArmZeroByteReceive()
    {
        _waitingForData = true;
        bool pending;
        try
        {
            pending = _source.ReceiveAsync(_readable);
        }
        catch (ObjectDisposedException)
        {
            // The supervisor closed the socket (reset or stop); it already knows why.
            _ended = true;
            return;
        }

        if (!pending)
        {
            // Completed at once: data (or an error) is already there.
            Self.Tell(PumpProtocol.IoCompleted.Instance);
        }
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

    protected override void PostStop()
    {
        _readable.Dispose();
    }
}
