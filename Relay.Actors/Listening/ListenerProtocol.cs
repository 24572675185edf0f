using System.Net;
using System.Net.Sockets;
using Akka.Actor;

namespace Relay.Actors.Listening;

/// <summary>What a <see cref="ListenerActor"/> reports to its parent about its socket.</summary>
public static class ListenerProtocol
{
    /// <summary>
    /// Circuits of route <paramref name="Route"/> handed over from another node, in the order
    /// they should start: the node's guardian passes them to the route's listener, an acceptor
    /// makes each a circuit of this node, and one <see cref="CircuitsAdopted"/> answers for
    /// all (one message per route rather than per circuit: a handover adopts thousands, and
    /// their pumps start only once adopted).
    /// </summary>
    public sealed record AdoptCircuits(string Route, IReadOnlyList<Circuits.MovedCircuit> Circuits) : INoSerializationVerificationNeeded;

    /// <summary>
    /// The moved circuits run here now as <paramref name="Adopted"/>, except those
    /// <paramref name="Refused"/> (their sockets are still the sender's).
    /// </summary>
    public sealed record CircuitsAdopted(IReadOnlyList<Circuits.CircuitEntry> Adopted, IReadOnlyList<CircuitNotAdopted> Refused)
        : INoSerializationVerificationNeeded
    {
        /// <summary>Every circuit of <paramref name="adopt"/> refused for one reason (the route is not listening, or no longer accepting).</summary>
        public static CircuitsAdopted NoneOf(AdoptCircuits adopt, string why) =>
            new([], adopt.Circuits.Select(c => new CircuitNotAdopted(c.Id, why)).ToList());
    }

    /// <summary>A moved circuit that could not be taken, and why.</summary>
    public sealed record CircuitNotAdopted(long Id, string Why);

    /// <summary>The route is listening on <paramref name="Endpoint"/> (the real port when 0 was asked).</summary>
    public sealed record Bound(string Route, IPEndPoint Endpoint) : INoSerializationVerificationNeeded;

    /// <summary>The route could not listen; <paramref name="Problem"/> is one line for an operator.</summary>
    public sealed record BindFailed(string Route, IPEndPoint Endpoint, string Problem) : INoSerializationVerificationNeeded;

    /// <summary>
    /// Stop accepting (<c>POST /routes/{name}/drain</c>): the listening socket is closed, so new
    /// connects are refused by the kernel, while open circuits run to their end. Replies
    /// <see cref="Draining"/> once the socket is closed, or <see cref="AlreadyDraining"/>.
    /// </summary>
    public sealed class Drain : INoSerializationVerificationNeeded
    {
        public static readonly Drain Instance = new();

        private Drain()
        {
        }
    }

    /// <summary>The route no longer accepts; its open circuits continue.</summary>
    public sealed record Draining(string Route) : INoSerializationVerificationNeeded;

    /// <summary>The route was already draining.</summary>
    public sealed record AlreadyDraining(string Route) : INoSerializationVerificationNeeded;

    /// <summary>
    /// Listener to acceptor: leave your core's event loop and accept no more. The acceptor does
    /// it itself because the registration belongs to its core thread; it answers
    /// <see cref="StoppedAccepting"/> and stays alive, since the route's circuits are its children.
    /// </summary>
    public sealed class StopAccepting : INoSerializationVerificationNeeded
    {
        public static readonly StopAccepting Instance = new();

        private StopAccepting()
        {
        }
    }

    /// <summary>Acceptor to listener: unregistered; the listening socket may be closed.</summary>
    public sealed class StoppedAccepting : INoSerializationVerificationNeeded
    {
        public static readonly StoppedAccepting Instance = new();

        private StoppedAccepting()
        {
        }
    }

    /// <summary>
    /// Guardian to listener, on a reload that removed or changed the route: stop accepting and
    /// stop once the open circuits have ended. With <paramref name="HandOver"/>, the listening
    /// socket is not closed but sent back in <see cref="HandedOver"/> for the route's new listener.
    /// </summary>
    public sealed record Retire(bool HandOver) : INoSerializationVerificationNeeded;

    /// <summary>The answer to <c>Retire(HandOver: true)</c>: the still-listening socket, or null if it was already closed.</summary>
    public sealed record HandedOver(string Route, Socket? Socket) : INoSerializationVerificationNeeded;

    /// <summary>
    /// Listener to acceptor, after <see cref="StopAccepting"/> on a retired route: stop once
    /// your circuits (your children) have all ended.
    /// </summary>
    public sealed class StopWhenIdle : INoSerializationVerificationNeeded
    {
        public static readonly StopWhenIdle Instance = new();

        private StopWhenIdle()
        {
        }
    }
}
