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
}
