using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Event;
using Relay.Actors.Configuration;
using Relay.Actors.Listening;
using Relay.Actors.Upstreams;

namespace Relay.Actors;

/// <summary>
/// INTERNAL API. The guardian's route set: <see cref="Desired"/> is the set the node is
/// configured to run (the last one a reload applied), the running routes are those with a
/// listener now, each with its pool, health checker and bound address. Nothing runs while
/// the node does not serve, and during a reload the running routes are a mix of old and new.
/// A plain class rather than an actor: the guardian and its <see cref="Reload.ReloadCoordinator"/>
/// call it from the guardian's own message handling, so it needs no locking and no messages.
/// </summary>
internal sealed class RunningRoutes
{
    private readonly IActorContext _context;
    private readonly RelayNodeContext _node;
    private readonly ILoggingAdapter _log;

    // The running routes by name; _order names, in config order, the routes an AwaitBound waits for.
    private readonly Dictionary<string, LiveRoute> _live = new(StringComparer.Ordinal);
    private List<string> _order;
    private int _generation;

    public RunningRoutes(IActorContext context, IReadOnlyList<RouteSettings> desired, RelayNodeContext node, ILoggingAdapter log)
    {
        _context = context;
        _node = node;
        _log = log;
        Desired = desired;
        _order = desired.Select(r => r.Name).ToList();
    }

    /// <summary>The route set to run while serving: the configured one, or the last one a reload applied.</summary>
    public IReadOnlyList<RouteSettings> Desired { get; private set; }

    /// <summary>The settings of the running routes, in config order.</summary>
    public IReadOnlyList<RouteSettings> Running => _order.Select(n => _live[n].Settings).ToList();

    /// <summary>True when every route an AwaitBound waits for is listening.</summary>
    public bool AllBound => _order.All(n => _live.TryGetValue(n, out var r) && r.Bound is not null);

    /// <summary>The routes listening now, with their real addresses, in config order.</summary>
    public ImmutableArray<ListenerProtocol.Bound> Bound() =>
        _order.Where(n => _live.TryGetValue(n, out var r) && r.Bound is not null)
            .Select(n => new ListenerProtocol.Bound(n, _live[n].Bound!))
            .ToImmutableArray();

    /// <summary>Starts every desired route with a socket of its own.</summary>
    public void StartDesired()
    {
        foreach (var route in Desired)
        {
            Start(route, socket: null);
        }
    }

    /// <summary>
    /// Starts a route's pool, health checker and listener; <paramref name="socket"/> is one
    /// already listening (a reload). A listener that drained may still be running for its
    /// open circuits: the new one then gets a fresh name.
    /// </summary>
    public void Start(RouteSettings route, Socket? socket)
    {
        var generation = ++_generation;
        var pool = new UpstreamPool(route.Name, route.Upstreams, _log);
        // A transparent route's circuits go to their original destinations: its pool holds
        // only a placeholder, which is neither health-checked nor shown as an upstream.
        var pooled = route.Transparent is null;
        if (pooled)
        {
            _node.Pools.Set(pool);
        }

        var checker = pooled && route.Upstreams.HealthCheck.Enabled
            ? _context.ActorOf(HealthChecker.Props(pool), $"health-{route.Name}-{generation}")
            : null;
        // The first listener of a route keeps the plain name; a reload's listeners get a
        // generation suffix, since the one they replace may still be ending its circuits.
        var name = _context.Child("listener-" + route.Name).IsNobody() ? "listener-" + route.Name : $"listener-{route.Name}-{generation}";
        var listener = _context.ActorOf(
            ListenerActor.Props(_node, route, pool, socket), name);
        _live[route.Name] = new LiveRoute(route, listener, checker);
    }

    /// <summary>Records the address a running route's listener bound, if <paramref name="listener"/> is still that route's.</summary>
    public void OnBound(ListenerProtocol.Bound bound, IActorRef listener)
    {
        if (_live.TryGetValue(bound.Route, out var live) && listener.Equals(live.Listener))
        {
            live.Bound = bound.Endpoint;
        }
    }

    /// <summary>The listener of a route that is listening, or <see cref="ActorRefs.Nobody"/>.</summary>
    public IActorRef BoundListener(string route) =>
        _live.TryGetValue(route, out var live) && live.Bound is not null ? live.Listener : ActorRefs.Nobody;

    /// <summary>True when <paramref name="route"/> runs and its listener has not bound yet.</summary>
    public bool IsBinding(string route) => _live.TryGetValue(route, out var live) && live.Bound is null;

    /// <summary>Takes a route out of the running set: its pool goes and its health checker stops. Returns its listener, which the caller retires.</summary>
    public IActorRef Release(string route)
    {
        var live = _live[route];
        _live.Remove(route);
        _node.Pools.Remove(route);
        if (live.Checker is not null)
        {
            _context.Stop(live.Checker);
        }

        return live.Listener;
    }

    /// <summary>Forgets a route whose listener failed to bind (that listener has stopped).</summary>
    public void Forget(string route)
    {
        _live.Remove(route);
        _node.Pools.Remove(route);
    }

    /// <summary>
    /// Every running route stops accepting; its pool and health checker go with it. Returns
    /// how many listeners were told to drain: only a bound listener answers a drain, one that
    /// failed to bind has stopped.
    /// </summary>
    public int DrainAll()
    {
        var drains = 0;
        foreach (var (name, live) in _live)
        {
            _node.Pools.Remove(name);
            if (live.Checker is not null)
            {
                _context.Stop(live.Checker);
            }

            if (live.Bound is not null)
            {
                drains++;
                live.Listener.Tell(ListenerProtocol.Drain.Instance);
            }
        }

        _live.Clear();
        return drains;
    }

    /// <summary>A reload is under way: AwaitBound now waits for the routes of <paramref name="next"/>.</summary>
    public void Expect(IReadOnlyList<RouteSettings> next) => _order = next.Select(r => r.Name).ToList();

    /// <summary>A reload on a node that does not serve: <paramref name="next"/> is what serving will bind.</summary>
    public void Replace(IReadOnlyList<RouteSettings> next)
    {
        Desired = next;
        Expect(next);
    }

    /// <summary>A reload is done: the routes of <paramref name="next"/> that run are the desired set.</summary>
    public void Settle(IReadOnlyList<RouteSettings> next)
    {
        _order = _order.Where(_live.ContainsKey).ToList();
        Desired = next.Where(r => _live.ContainsKey(r.Name)).ToList();
    }

    /// <summary>One running route: its settings, its listener, its health checker, and its bound address once known.</summary>
    private sealed class LiveRoute(RouteSettings settings, IActorRef listener, IActorRef? checker)
    {
        public RouteSettings Settings { get; } = settings;

        public IActorRef Listener { get; } = listener;

        public IActorRef? Checker { get; } = checker;

        public IPEndPoint? Bound { get; set; }
    }
}
