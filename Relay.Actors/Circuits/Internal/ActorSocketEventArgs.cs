using System.Net.Sockets;
using Akka.Actor;

namespace Relay.Actors.Circuits.Internal;

/// <summary>
/// INTERNAL API. A reusable <see cref="SocketAsyncEventArgs"/> whose completion only tells
/// its actor <see cref="PumpProtocol.IoCompleted"/>. Socket callbacks run on the runtime's
/// I/O threads and never touch actor state (akka.net's TcpListener does the same); the
/// actor reads the result from this object when the message arrives on its own thread.
/// </summary>
internal sealed class ActorSocketEventArgs : SocketAsyncEventArgs
{
    private readonly IActorRef _owner;

    public ActorSocketEventArgs(IActorRef owner)
        : base(unsafeSuppressExecutionContextFlow: true)
    {
        _owner = owner;
    }

    protected override void OnCompleted(SocketAsyncEventArgs e) =>
        _owner.Tell(PumpProtocol.IoCompleted.Instance, ActorRefs.NoSender);
}
