using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors.Internal;
using Akka.Event;
using Relay.Actors.Circuits;
using Relay.Actors.Configuration;
using Relay.Actors.Listening;
using Relay.Actors.Metrics;
using Relay.Actors.Upstreams;

namespace Relay.Actors;

/// <summary>
/// The top of a node's relay tree (<c>/user/relay</c>): starts one <see cref="ListenerActor"/>
/// per route (and a <see cref="HealthChecker"/> where the route's pool asks for one), answers
/// <see cref="RelayGuardian.AwaitBound"/> once every route is listening or one has failed to,
/// and applies a new route set on reload (<see cref="ApplyRoutes"/>, in RelayGuardian.Reload.cs).
/// </summary>
public sealed partial class RelayGuardian : UntypedActor
{
    private readonly RelaySettings _settings;
    private readonly CircuitRegistry _registry;
    private readonly CoreBalancer _balancer;
    private readonly string _node;
    private readonly RelayMetrics _metrics;
    private readonly UpstreamPools _pools;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    // The running routes by name, in the order of the current config.
    private readonly Dictionary<string, LiveRoute> _live = new(StringComparer.Ordinal);
    private List<string> _order = new();
    private readonly List<IActorRef> _waiting = new();
    private ListenerProtocol.BindFailed? _failure;
    private int _generation;

    public RelayGuardian(RelaySettings settings, CircuitRegistry registry, CoreBalancer balancer, string node, RelayMetrics metrics,
        UpstreamPools pools, bool serveAtStart = true)
    {
        _serving = serveAtStart;
        _settings = settings;
        _registry = registry;
        _balancer = balancer;
        _node = node;
        _metrics = metrics;
        _pools = pools;
    }

    /// <param name="serveAtStart">
    /// False on a clustered standby: the routes are bound only on <see cref="StartServing"/>.
    /// </param>
    public static Props Props(RelaySettings settings, CircuitRegistry registry, CoreBalancer balancer, string node, RelayMetrics metrics,
        UpstreamPools pools, bool serveAtStart = true) =>
        PropsFactory.Of(() => new RelayGuardian(settings, registry, balancer, node, metrics, pools, serveAtStart));

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
    /// A listener that throws has a bug, not a bad socket (bind problems are reported, not
    /// thrown): restart it. Its circuits are separate children and are not touched. A health
    /// checker that throws is restarted too: its verdicts so far stay in the pool.
    /// </summary>
    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(maxNrOfRetries: 10, withinTimeRange: TimeSpan.FromMinutes(1), e =>
        {
            _log.Error(e, "{EventName:l} a listener failed: {Error}", "ListenerFailed", e.Message);
            return Directive.Restart;
        });

    protected override void PreStart()
    {
        _desired = _settings.Routes;
        _order = _desired.Select(r => r.Name).ToList();
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
                if (_live.TryGetValue(bound.Route, out var live) && Sender.Equals(live.Listener))
                {
                    live.Bound = bound.Endpoint;
                }

                Answer();
                OnReloadProgress();
                break;

            case ListenerProtocol.BindFailed failed:
                _log.Error("{EventName:l} {Problem:l}", "ListenerBindFailed", failed.Problem);
                if (_reload is not null)
                {
                    OnReloadBindFailed(failed);
                }
                else
                {
                    _failure ??= failed;
                    Answer();
                }

                break;

            case DrainRoute drain:
                var listener = _live.TryGetValue(drain.Route, out var route) && route.Bound is not null ? route.Listener : ActorRefs.Nobody;
                if (listener.IsNobody())
                {
                    Sender.Tell(new UnknownRoute(drain.Route));
                }
                else
                {
                    listener.Forward(ListenerProtocol.Drain.Instance);
                }

                break;

            case AwaitBound:
                _waiting.Add(Sender);
                Answer();
                break;

            default:
                if (!OnReloadMessage(message) && !OnServingMessage(message))
                {
                    Unhandled(message);
                }

                break;
        }
    }

    /// <summary>Starts a route's pool, health checker and listener; <paramref name="socket"/> is one already listening (a reload).</summary>
    private void StartRoute(RouteSettings route, Socket? socket)
    {
        var generation = ++_generation;
        var pool = new UpstreamPool(route.Name, route.Upstreams, _log);
        // A transparent route's circuits go to their original destinations: its pool holds
        // only a placeholder, which is neither health-checked nor shown as an upstream.
        var pooled = route.Transparent is null;
        if (pooled)
        {
            _pools.Set(pool);
        }

        var checker = pooled && route.Upstreams.HealthCheck.Enabled
            ? Context.ActorOf(HealthChecker.Props(pool), $"health-{route.Name}-{generation}")
            : null;
        // The first listener of a route keeps the plain name; a reload's listeners get a
        // generation suffix, since the one they replace may still be ending its circuits.
        var name = Context.Child("listener-" + route.Name).IsNobody() ? "listener-" + route.Name : $"listener-{route.Name}-{generation}";
        var listener = Context.ActorOf(
            ListenerActor.Props(route, _registry, _balancer, _node, _metrics.ForRoute(route.Name), pool, socket), name);
        _live[route.Name] = new LiveRoute(route, listener, checker);
    }

    private void Answer()
    {
        object? answer = _failure is not null
            ? _failure
            : _order.All(n => _live.TryGetValue(n, out var r) && r.Bound is not null)
                ? new RoutesBound(BoundRoutes())
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

    private ImmutableArray<ListenerProtocol.Bound> BoundRoutes() =>
        _order.Where(n => _live.TryGetValue(n, out var r) && r.Bound is not null)
            .Select(n => new ListenerProtocol.Bound(n, _live[n].Bound!))
            .ToImmutableArray();

    /// <summary>One running route: its settings, its listener, its health checker, and its bound address once known.</summary>
    private sealed class LiveRoute(RouteSettings settings, IActorRef listener, IActorRef? checker)
    {
        public RouteSettings Settings { get; } = settings;

        public IActorRef Listener { get; } = listener;

        public IActorRef? Checker { get; } = checker;

        public IPEndPoint? Bound { get; set; }
    }
}
