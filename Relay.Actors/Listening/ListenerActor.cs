using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors.Internal;
using Akka.Event;
using Relay.Actors.Configuration;
using Relay.Actors.Dispatch;
using Relay.Actors.Logging;
using Relay.Actors.Metrics;
using Relay.Actors.Sockets;
using Relay.Actors.Transparent;
using Relay.Actors.Upstreams;

namespace Relay.Actors.Listening;

/// <summary>
/// Owns one route's listening socket: binds it (reporting <see cref="ListenerProtocol.Bound"/>
/// or <see cref="ListenerProtocol.BindFailed"/> to its parent), then starts one
/// <see cref="AcceptorActor"/> per core dispatcher on it. Circuits are the acceptors' children.
/// </summary>
public sealed class ListenerActor : UntypedActor
{
    private readonly RelayNodeContext _node;
    private readonly RouteSettings _route;
    private readonly RouteMetrics _metrics;
    private readonly UpstreamPool? _pool;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private Socket? _socket;
    private Socket? _inherited;
    private bool _retiring;
    private IActorRef? _handOverTo;
    private IPEndPoint? _bound;
    private bool _draining;
    private int _acceptorsAccepting;
    private readonly List<IActorRef> _drainWaiters = new();

    public ListenerActor(RelayNodeContext node, RouteSettings route, UpstreamPool? pool = null, Socket? socket = null)
    {
        _node = node;
        _route = route;
        _metrics = node.Metrics.ForRoute(route.Name);
        _pool = pool;
        _inherited = socket;
    }

    /// <param name="pool">The route's shared upstream pool (null: each circuit makes its own, for tests).</param>
    /// <param name="socket">A socket already listening on the route's address (a reload); null binds a new one.</param>
    public static Props Props(RelayNodeContext node, RouteSettings route, UpstreamPool? pool = null, Socket? socket = null) =>
        PropsFactory.Of(() => new ListenerActor(node, route, pool, socket));

    /// <summary>
    /// An acceptor that throws has a bug in its accept loop: restart it. Its restart keeps its
    /// circuits, which do not depend on the loop.
    /// </summary>
    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(maxNrOfRetries: 10, withinTimeRange: TimeSpan.FromMinutes(1), e =>
        {
            RelayEvents.AcceptorFailed.LogException(_log, e, _route.Name, e.Message);
            return Directive.Restart;
        });

    protected override void PreStart()
    {
        // A socket handed over by a reload is used once: after a restart it has been closed.
        var inherited = _inherited is { SafeHandle.IsClosed: false } ? _inherited : null;
        _inherited = null;
        string problem;
        var ok = inherited is not null
            ? ListenSocket.TryAdopt(_route, inherited, out problem)
            : ListenSocket.TryOpen(_route, out inherited, out problem, freeBind: _route.Listen.Address.Equals(_node.ServiceAddress));
        if (!ok)
        {
            inherited?.Dispose();
            Context.Parent.Tell(new ListenerProtocol.BindFailed(_route.Name, _route.Listen, problem));
            Context.Stop(Self);
            return;
        }

        _socket = inherited!;
        var bound = (IPEndPoint)_socket.LocalEndPoint!;
        _bound = bound;
        ListeningAddresses.For(Context.System).Add(Self.Path.Name, bound); // the transparent routes' loop guard
        for (var core = 0; core < _node.Balancer.Cores; core++)
        {
            var acceptor = Context.ActorOf(AcceptorActor.Props(_node, _socket, core, _route, _metrics, _pool)
                .WithDispatcher(CoreDispatchers.IdFor(core)), "acceptor-" + core.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Context.Watch(acceptor); // a retired listener stops once every acceptor (and so every circuit) is gone
        }

        RelayEvents.ListenerBound.Log(_log, _route.Name, bound.ToString(), _route.Upstreams.ToString());
        Context.Parent.Tell(new ListenerProtocol.Bound(_route.Name, bound));
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case ListenerProtocol.Retire retire:
                Retire(retire.HandOver ? Sender : null);
                break;

            case Terminated:
                StopIfRetired();
                break;

            case ListenerProtocol.AdoptCircuits adopt when _draining || _retiring:
                Sender.Tell(ListenerProtocol.CircuitsAdopted.NoneOf(adopt, $"route {_route.Name} is no longer accepting"));
                break;

            case ListenerProtocol.AdoptCircuits adopt:
                // Any acceptor will do: the core balancer places the circuit, as for an accepted one.
                Context.Child("acceptor-0").Forward(adopt);
                break;

            case ListenerProtocol.Drain when _draining:
                Sender.Tell(new ListenerProtocol.AlreadyDraining(_route.Name));
                break;

            case ListenerProtocol.Drain:
                _draining = true;
                _drainWaiters.Add(Sender);
                // The socket is registered in every core's epoll; it is closed only after each
                // acceptor has left its loop, so no loop is left holding a dead descriptor.
                var acceptors = Context.GetChildren().ToList();
                _acceptorsAccepting = acceptors.Count;
                acceptors.ForEach(a => a.Tell(ListenerProtocol.StopAccepting.Instance));
                if (_acceptorsAccepting == 0)
                {
                    CloseForDrain();
                }

                break;

            case ListenerProtocol.StoppedAccepting:
                if (--_acceptorsAccepting == 0)
                {
                    FinishStopAccepting();
                    StopIfRetired();
                }

                break;

            default:
                Unhandled(message);
                break;
        }
    }

    /// <summary>
    /// With the socket closed the kernel refuses new connects (RST) and resets any still in
    /// the accept queue; circuits already accepted are separate sockets and carry on.
    /// </summary>
    private void CloseForDrain()
    {
        _socket?.Dispose();
        RelayEvents.RouteDraining.Log(_log, _route.Name, _bound?.ToString() ?? "?", _metrics.Active);
        foreach (var waiter in _drainWaiters)
        {
            waiter.Tell(new ListenerProtocol.Draining(_route.Name));
        }

        _drainWaiters.Clear();
    }

    /// <summary>
    /// A reload removed or replaced this route. New connects stop now; the circuits already
    /// accepted keep their settings and run to their end, and then this listener stops. With
    /// <paramref name="handOverTo"/>, the listening socket is not closed but given to the
    /// route's next listener, so no connect is refused during the reload.
    /// </summary>
    private void Retire(IActorRef? handOverTo)
    {
        _retiring = true;
        var acceptors = Context.GetChildren().ToList();
        if (!_draining)
        {
            _draining = true;
            _handOverTo = handOverTo;
            _acceptorsAccepting = acceptors.Count;
            acceptors.ForEach(a => a.Tell(ListenerProtocol.StopAccepting.Instance));
        }
        else
        {
            // Drained before (POST /routes/{name}/drain): the socket is closed, nothing to hand over.
            handOverTo?.Tell(new ListenerProtocol.HandedOver(_route.Name, null));
        }

        // After StopAccepting in each acceptor's mailbox, so each answers before it may stop.
        acceptors.ForEach(a => a.Tell(ListenerProtocol.StopWhenIdle.Instance));
        if (_acceptorsAccepting == 0)
        {
            FinishStopAccepting();
        }

        StopIfRetired();
    }

    private void FinishStopAccepting()
    {
        if (_handOverTo is not null)
        {
            HandOverSocket();
        }
        else
        {
            CloseForDrain();
        }
    }

    /// <summary>A retired listener ends once its socket is dealt with and every acceptor (and circuit) is gone.</summary>
    private void StopIfRetired()
    {
        if (_retiring && _handOverTo is null && _acceptorsAccepting <= 0 && !Context.GetChildren().Any())
        {
            Context.Stop(Self);
        }
    }

    private void HandOverSocket()
    {
        var socket = _socket;
        _socket = null; // no longer ours to close
        RelayEvents.RouteHandedOver.Log(_log, _route.Name, _bound?.ToString() ?? "?", _metrics.Active);
        _handOverTo!.Tell(new ListenerProtocol.HandedOver(_route.Name, socket));
        _handOverTo = null;
    }

    protected override void PostStop()
    {
        _socket?.Dispose();
        ListeningAddresses.For(Context.System).Remove(Self.Path.Name);
    }
}
