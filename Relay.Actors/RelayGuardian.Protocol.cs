using System.Collections.Immutable;
using Akka.Actor;
using Relay.Actors.Configuration;
using Relay.Actors.Listening;
using Relay.Actors.Reload;

namespace Relay.Actors;

/// <summary>The messages <see cref="RelayGuardian"/> answers. This part holds no state.</summary>
public sealed partial class RelayGuardian
{
    /// <summary>Ask: replies <see cref="RoutesBound"/> or <see cref="ListenerProtocol.BindFailed"/>.</summary>
    public sealed class AwaitBound
    {
        public static readonly AwaitBound Instance = new();
    }

    /// <summary>
    /// Ask: stop accepting on <paramref name="Route"/>. Replies <see cref="ListenerProtocol.Draining"/>,
    /// <see cref="ListenerProtocol.AlreadyDraining"/> or <see cref="UnknownRoute"/>.
    /// </summary>
    public sealed record DrainRoute(string Route) : INoSerializationVerificationNeeded;

    /// <summary>No route of that name is listening on this node.</summary>
    public sealed record UnknownRoute(string Route) : INoSerializationVerificationNeeded;

    /// <summary>Every route is listening; endpoints carry the real ports.</summary>
    public sealed record RoutesBound(ImmutableArray<ListenerProtocol.Bound> Routes);

    /// <summary>
    /// Ask: make <paramref name="Routes"/> the running route set. Replies <see cref="RoutesApplied"/>
    /// or <see cref="RoutesRejected"/>. A route equal to its running self is not touched.
    /// </summary>
    public sealed record ApplyRoutes(IReadOnlyList<RouteSettings> Routes) : INoSerializationVerificationNeeded;

    /// <summary>The new route set is running; <paramref name="Routes"/> are all routes as bound now.</summary>
    public sealed record RoutesApplied(RouteChanges Changes, ImmutableArray<ListenerProtocol.Bound> Routes) : INoSerializationVerificationNeeded;

    /// <summary>The reload was not applied (or, when <paramref name="Partial"/>, only in part); <paramref name="Problem"/> is one line.</summary>
    public sealed record RoutesRejected(string Problem, bool Partial = false) : INoSerializationVerificationNeeded;

    /// <summary>
    /// Ask: bind every route now (a no-op when already serving). Replies like
    /// <see cref="AwaitBound"/>: <see cref="RoutesBound"/> or <see cref="ListenerProtocol.BindFailed"/>.
    /// </summary>
    public sealed class StartServing : INoSerializationVerificationNeeded
    {
        public static readonly StartServing Instance = new();

        private StartServing()
        {
        }
    }

    /// <summary>
    /// Ask: stop accepting on every route (each listener drains: its socket closes, its open
    /// circuits run on). Replies <see cref="ServingStopped"/> once every socket is closed.
    /// </summary>
    public sealed class StopServing : INoSerializationVerificationNeeded
    {
        public static readonly StopServing Instance = new();

        private StopServing()
        {
        }
    }

    /// <summary>No route accepts any more on this node.</summary>
    public sealed class ServingStopped : INoSerializationVerificationNeeded
    {
        public static readonly ServingStopped Instance = new();

        private ServingStopped()
        {
        }
    }
}
