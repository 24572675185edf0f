using System.Net;
using Akka.Actor;

namespace Relay.Actors.Listening;

/// <summary>What a <see cref="ListenerActor"/> reports to its parent about its socket.</summary>
public static class ListenerProtocol
{
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
}
