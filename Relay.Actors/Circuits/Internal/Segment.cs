using Akka.Actor;
using Akka.Event;

namespace Relay.Actors.Circuits.Internal;

/// <summary>
/// INTERNAL API. One credit of a direction's in-flight window, travelling as a message:
/// reader to writer with bytes in it, writer back to reader when the bytes are out.
/// A reader owns <c>window / write-size</c> of these for its whole life, so passing a
/// chunk allocates nothing; the byte array is rented only while bytes are in flight,
/// so an idle circuit holds no buffer.
/// </summary>
internal sealed class Segment : INoSerializationVerificationNeeded, IDeadLetterSuppression
{
    public byte[]? Buffer;

    public int Length;
}
