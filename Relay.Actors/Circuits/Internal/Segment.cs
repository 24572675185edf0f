using System.Net.Sockets;
using Akka.Actor;
using Akka.Event;
using Relay.Actors.Sockets;

namespace Relay.Actors.Circuits.Internal;

/// <summary>
/// INTERNAL API. One credit of a direction's in-flight window, travelling as a message:
/// reader to writer with bytes in it, writer back to reader when the bytes are out.
/// A reader lane makes at most <c>window / write-size</c> of these and keeps them for its
/// whole life, so passing a chunk allocates nothing; the byte array is rented only while
/// bytes are in flight, so an idle circuit holds no buffer.
/// </summary>
internal sealed class Segment(Direction direction) : INoSerializationVerificationNeeded, IDeadLetterSuppression
{
    /// <summary>The direction whose window this credit belongs to, for its whole life.</summary>
    public readonly Direction Direction = direction;

    public byte[]? Buffer;

    public int Length;

    /// <summary>How many of the bytes are in the kernel already (the reader's inline write, or the writer's).</summary>
    public int Offset;

    /// <summary>
    /// The source's EOF came right after these bytes: the writer sends them with the FIN
    /// (one TCP segment for a short tail) and no <see cref="PumpProtocol.EndOfStream"/> follows.
    /// </summary>
    public bool EndsStream;

    /// <summary>
    /// A copy of the bytes of <paramref name="segments"/> not yet in the kernel, in order: what
    /// a frozen pump holds of one direction.
    /// </summary>
    public static byte[] Unsent(IReadOnlyCollection<Segment> segments)
    {
        var total = 0;
        foreach (var segment in segments)
        {
            total += segment.Length - segment.Offset;
        }

        var bytes = new byte[total];
        var at = 0;
        foreach (var segment in segments)
        {
            var length = segment.Length - segment.Offset;
            segment.Buffer.AsSpan(segment.Offset, length).CopyTo(bytes.AsSpan(at));
            at += length;
        }

        return bytes;
    }

    /// <summary>
    /// Sends the bytes not yet sent (from <see cref="Offset"/>) to <paramref name="destination"/>,
    /// counting each send: Success once all are in the kernel, WouldBlock when it is full (the
    /// rest stays for later), or the error. The one send loop of both pumps.
    /// </summary>
    public SocketError SendRest(SafeSocketHandle destination, CircuitCounters counters)
    {
        while (Offset < Length)
        {
            var sent = RawSocket.Send(destination, Buffer!, Offset, Length - Offset, out var error, finFollows: EndsStream);
            if (error != SocketError.Success)
            {
                return error;
            }

            counters.AddWritten(Direction == Direction.Up, sent, Environment.TickCount64);
            Offset += sent;
        }

        return SocketError.Success;
    }
}
