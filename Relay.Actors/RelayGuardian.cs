using Akka.Actor;
using Relay.Actors.Internal;
using Akka.Event;
using Relay.Actors.Configuration;
using Relay.Actors.Listening;
using Relay.Actors.Logging;
using Relay.Actors.Reload;
using Relay.Actors.Upstreams;

namespace Relay.Actors;

/// <summary>
/// The top of a node's relay tree (<c>/user/relay</c>): starts one <see cref="ListenerActor"/>
/// per route (and a <see cref="HealthChecker"/> where the route's pool asks for one), answers
/// <see cref="AwaitBound"/> once every route is listening or one has failed to, binds and
/// drains the routes when a clustered node takes or hands over the service
/// (<see cref="StartServing"/>, <see cref="StopServing"/>), and hands a new route set to its
/// <see cref="ReloadCoordinator"/> (<see cref="ApplyRoutes"/>). The routes themselves, running
/// and desired, are kept by <see cref="RunningRoutes"/>; the guardian keeps who waits for what.
/// Its messages are in RelayGuardian.Protocol.cs.
/// </summary>
public sealed partial class RelayGuardian : UntypedActor
{
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly RunningRoutes _routes;
    private readonly ReloadCoordinator _reload;

    // Waiting for every route to be bound (AwaitBound, StartServing), and the first bind failure that answers them instead.
    private readonly List<IActorRef> _waiting = new();
    private ListenerProtocol.BindFailed? _failure;

    // Serving on demand: a clustered standby binds nothing until it owns the service. While it
    // does not serve, a reload changes only what it will bind.
    private readonly List<IActorRef> _stopWaiters = new();
    private bool _serving;
    private int _drainsPending;

    public RelayGuardian(RelaySettings settings, bool serveAtStart = true)
    {
        _serving = serveAtStart;
        _routes = new RunningRoutes(Context, settings.Routes, RelayNodeContext.For(Context.System), _log);
        _reload = new ReloadCoordinator(_routes, Self, _log);
    }

    /// <param name="serveAtStart">
    /// False on a clustered standby: the routes are bound only on <see cref="StartServing"/>.
    /// </param>
    public static Props Props(RelaySettings settings, bool serveAtStart = true) =>
        PropsFactory.Of(() => new RelayGuardian(settings, serveAtStart));

    /// <summary>
    /// A listener that throws has a bug, not a bad socket (bind problems are reported, not
    /// thrown): restart it. Its circuits are separate children and are not touched. A health
    /// checker that throws is restarted too: its verdicts so far stay in the pool.
    /// </summary>
    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(maxNrOfRetries: 10, withinTimeRange: TimeSpan.FromMinutes(1), e =>
        {
            RelayEvents.ListenerFailed.LogException(_log, e, e.Message);
            return Directive.Restart;
        });

    protected override void PreStart()
    {
        if (_serving)
        {
            StartRoutes();
        }
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case ListenerProtocol.Bound bound:
                _routes.OnBound(bound, Sender);
                AnswerBound();
                _reload.OnProgress();
                break;

            case ListenerProtocol.BindFailed failed:
                RelayEvents.ListenerBindFailed.Log(_log, failed.Problem);
                if (_reload.InProgress)
                {
                    _reload.OnBindFailed(failed);
                }
                else
                {
                    _failure ??= failed;
                    AnswerBound();
                }

                break;

            case DrainRoute drain:
                var listener = _routes.BoundListener(drain.Route);
                if (listener.IsNobody())
                {
                    Sender.Tell(new UnknownRoute(drain.Route));
                }
                else
                {
                    listener.Forward(ListenerProtocol.Drain.Instance);
                }

                break;

            case ListenerProtocol.AdoptCircuits adopt:
                var routeListener = _routes.BoundListener(adopt.Route);
                if (routeListener.IsNobody())
                {
                    Sender.Tell(ListenerProtocol.CircuitsAdopted.NoneOf(adopt, $"route {adopt.Route} is not listening on this node"));
                }
                else
                {
                    routeListener.Forward(adopt);
                }

                break;

            case AwaitBound:
                _waiting.Add(Sender);
                AnswerBound();
                break;

            case ApplyRoutes apply:
                _reload.Apply(apply.Routes, _serving, Sender);
                break;

            case ReloadCoordinator.HandOversDone done:
                _reload.OnHandOvers(done);
                break;

            case StartServing:
                if (!_serving)
                {
                    StartRoutes();
                }

                _waiting.Add(Sender);
                AnswerBound();
                break;

            case StopServing:
                _stopWaiters.Add(Sender);
                if (_serving)
                {
                    _serving = false;
                    _drainsPending += _routes.DrainAll();
                }

                AnswerStopped();
                break;

            case ListenerProtocol.Draining or ListenerProtocol.AlreadyDraining when _drainsPending > 0:
                _drainsPending--;
                AnswerStopped();
                break;

            default:
                Unhandled(message);
                break;
        }
    }

    private void StartRoutes()
    {
        _serving = true;
        _failure = null;
        _routes.StartDesired();
    }

    private void AnswerBound()
    {
        object? answer = _failure is not null
            ? _failure
            : _routes.AllBound
                ? new RoutesBound(_routes.Bound())
                : null;
        if (answer is null)
        {
            return;
        }

        foreach (var waiter in _waiting)
        {
            waiter.Tell(answer);
        }

        _waiting.Clear();
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
