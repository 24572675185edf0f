namespace Relay.Actors.Handover;

/// <summary>
/// A state channel failed: the message is one line naming the peer and the problem
/// (refused, closed mid-frame, a frame above the maximum, a socket error). The channel it
/// came from is closed by then.
/// </summary>
public sealed class StateChannelException : IOException
{
    public StateChannelException(string message)
        : base(message)
    {
    }

    public StateChannelException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
