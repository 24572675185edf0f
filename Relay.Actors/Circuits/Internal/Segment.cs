using Akka.Actor;
using Akka.Event;

namespace Relay.Actors.Circuits.Internal;

/// <summary>
/// INTERNAL API. One credit of a direction's in-flight window, travelling as a message:
/// reader to writer with bytes in it, writer back to reader when the bytes are out.
/// A reader owns <c>window / write-size</c> of these per direction for its whole life, so
/// passing a chunk allocates nothing; the byte array is rented only while bytes are in
/// flight, so an idle circuit holds no buffer.
/// </summary>
internal sealed class Segment(Direction direction) : INoSerializationVerificationNeeded, IDeadLetterSuppression
{
    /// <summary>The direction whose window this credit belongs to, for its whole life.</summary>
    public readonly Direction Direction = direction;

    public byte[]? Buffer;

    public int Length;

    /// <summary>How many of the bytes the reader wrote inline before the destination filled up.</summary>
    public int Offset;

    /// <summary>
    /// The source's EOF came right after these bytes: the writer sends them with the FIN
    /// (one TCP segment for a short tail) and no <see cref="PumpProtocol.EndOfStream"/> follows.
    /// </summary>
    public bool EndsStream;
}
