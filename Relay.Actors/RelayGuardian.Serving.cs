using System.Globalization;
using Akka.Actor;
using Relay.Actors.Listening;

namespace Relay.Actors;

/// <summary>
/// Serving on demand: a clustered node binds its routes only while it owns the service
/// (<see cref="StartServing"/>) and stops accepting when it hands the service over
/// (<see cref="StopServing"/>). Kept apart from the rest of the guardian so that route
/// changes and ownership changes stay separate concerns.
/// </summary>
public sealed partial class RelayGuardian
{
    private readonly Dictionary<string, IActorRef> _listeners = new(StringComparer.Ordinal);
    private readonly List<IActorRef> _stopWaiters = new();
    private bool _serving;
    private int _generation;
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

    private void StartListeners()
    {
        _serving = true;
        _bound.Clear();
        _failure = null;
        // A listener that drained keeps running for its open circuits (they are its
        // grandchildren), so serving again needs fresh actor names.
        var suffix = _generation++ == 0 ? "" : "-" + _generation.ToString(CultureInfo.InvariantCulture);
        foreach (var route in _settings.Routes)
        {
            _listeners[route.Name] = Context.ActorOf(
                ListenerActor.Props(route, _registry, _balancer, _node, _metrics.ForRoute(route.Name)), "listener-" + route.Name + suffix);
        }
    }

    private IActorRef ListenerOf(string route) => _listeners.GetValueOrDefault(route) ?? ActorRefs.Nobody;

    private bool OnServingMessage(object message)
    {
        switch (message)
        {
            case StartServing:
                if (!_serving)
                {
                    StartListeners();
                }

                _waiting.Add(Sender);
                Answer();
                return true;

            case StopServing:
                _stopWaiters.Add(Sender);
                if (_serving)
                {
                    _serving = false;
                    // Only a bound listener answers a drain; one that failed to bind has stopped.
                    foreach (var (route, listener) in _listeners)
                    {
                        if (_bound.ContainsKey(route))
                        {
                            _drainsPending++;
                            listener.Tell(ListenerProtocol.Drain.Instance);
                        }
                    }

                    _bound.Clear();

                    _listeners.Clear();
                }

                AnswerStopped();
                return true;

            case ListenerProtocol.Draining or ListenerProtocol.AlreadyDraining:
                _drainsPending--;
                AnswerStopped();
                return true;

            default:
                return false;
        }
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
