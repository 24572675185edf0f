using System.Collections.Immutable;
using Akka.Actor;
using Relay.Actors.Internal;
using Akka.Event;
using Relay.Actors.Circuits;
using Relay.Actors.Configuration;
using Relay.Actors.Listening;
using Relay.Actors.Metrics;

namespace Relay.Actors;

/// <summary>
/// The top of a node's relay tree (<c>/user/relay</c>): starts one <see cref="ListenerActor"/>
/// per route and answers <see cref="RelayGuardian.AwaitBound"/> once every route is listening
/// or one has failed to.
/// </summary>
public sealed partial class RelayGuardian : UntypedActor
{
    private readonly RelaySettings _settings;
    private readonly CircuitRegistry _registry;
    private readonly CoreBalancer _balancer;
    private readonly string _node;
    private readonly RelayMetrics _metrics;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<string, ListenerProtocol.Bound> _bound = new();
    private readonly List<IActorRef> _waiting = new();
    private ListenerProtocol.BindFailed? _failure;

    public RelayGuardian(RelaySettings settings, CircuitRegistry registry, CoreBalancer balancer, string node, RelayMetrics metrics,
        bool serveAtStart = true)
    {
        _serving = serveAtStart;
        _settings = settings;
        _registry = registry;
        _balancer = balancer;
        _node = node;
        _metrics = metrics;
    }

    /// <param name="serveAtStart">
    /// False on a clustered standby: the routes are bound only on <see cref="StartServing"/>.
    /// </param>
    public static Props Props(RelaySettings settings, CircuitRegistry registry, CoreBalancer balancer, string node, RelayMetrics metrics,
        bool serveAtStart = true) =>
        PropsFactory.Of(() => new RelayGuardian(settings, registry, balancer, node, metrics, serveAtStart));

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
    /// thrown): restart it. Its circuits are separate children and are not touched.
    /// </summary>
    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(maxNrOfRetries: 10, withinTimeRange: TimeSpan.FromMinutes(1), e =>
        {
            _log.Error(e, "{EventName:l} a listener failed: {Error}", "ListenerFailed", e.Message);
            return Directive.Restart;
        });

    protected override void PreStart()
    {
        if (_serving)
        {
            StartListeners();
        }
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case ListenerProtocol.Bound bound:
                _bound[bound.Route] = bound;
                Answer();
                break;

            case ListenerProtocol.BindFailed failed:
                _failure ??= failed;
                _log.Error("{EventName:l} {Problem:l}", "ListenerBindFailed", failed.Problem);
                Answer();
                break;

            case DrainRoute drain:
                var listener = _bound.ContainsKey(drain.Route) ? ListenerOf(drain.Route) : ActorRefs.Nobody;
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
                if (!OnServingMessage(message))
                {
                    Unhandled(message);
                }

                break;
        }
    }

    private void Answer()
    {
        object? answer = _failure is not null
            ? _failure
            : _bound.Count == _settings.Routes.Count
                ? new RoutesBound(_settings.Routes.Select(r => _bound[r.Name]).ToImmutableArray())
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
}
