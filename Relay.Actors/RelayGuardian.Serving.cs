using Akka.Actor;
using Relay.Actors.Configuration;
using Relay.Actors.Listening;

namespace Relay.Actors;

/// <summary>
/// Serving on demand: a clustered node binds its routes only while it owns the service
/// (<see cref="StartServing"/>) and stops accepting when it hands the service over
/// (<see cref="StopServing"/>). Kept apart from the rest of the guardian so that route
/// changes (reload) and ownership changes stay separate concerns: <see cref="_desired"/> is
/// the route set a reload last applied, <c>_live</c> the routes running now, which is empty
/// while the node does not serve.
/// </summary>
public sealed partial class RelayGuardian
{
    private readonly List<IActorRef> _stopWaiters = new();
    private IReadOnlyList<RouteSettings> _desired = [];
    private bool _serving;
    private int _drainsPending;

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

    /// <summary>
    /// Starts every desired route. A listener that drained keeps running for its open
    /// circuits, and <see cref="StartRoute"/> gives a new listener a fresh name in that case.
    /// </summary>
    private void StartRoutes()
    {
        _serving = true;
        _failure = null;
        foreach (var route in _desired)
        {
            StartRoute(route, socket: null);
        }
    }

    private bool OnServingMessage(object message)
    {
        switch (message)
        {
            case StartServing:
                if (!_serving)
                {
                    StartRoutes();
                }

                _waiting.Add(Sender);
                Answer();
                return true;

            case StopServing:
                _stopWaiters.Add(Sender);
                if (_serving)
                {
                    StopRoutes();
                }

                AnswerStopped();
                return true;

            case ListenerProtocol.Draining or ListenerProtocol.AlreadyDraining when _drainsPending > 0:
                _drainsPending--;
                AnswerStopped();
                return true;

            default:
                return false;
        }
    }

    /// <summary>Every running route stops accepting; its pool and health checker go with it.</summary>
    private void StopRoutes()
    {
        _serving = false;
        foreach (var (name, live) in _live)
        {
            _pools.Remove(name);
            if (live.Checker is not null)
            {
                Context.Stop(live.Checker);
            }

            // Only a bound listener answers a drain; one that failed to bind has stopped.
            if (live.Bound is not null)
            {
                _drainsPending++;
                live.Listener.Tell(ListenerProtocol.Drain.Instance);
            }
        }

        _live.Clear();
    }

    private void AnswerStopped()
    {
        if (_drainsPending > 0)
        {
            return;
        }

        foreach (var waiter in _stopWaiters)
        {
            waiter.Tell(ServingStopped.Instance);
        }

        _stopWaiters.Clear();
    }
}
