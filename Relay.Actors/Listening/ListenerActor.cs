using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors.Internal;
using Akka.Event;
using Relay.Actors.Circuits;
using Relay.Actors.Configuration;
using Relay.Actors.Dispatch;
using Relay.Actors.Dispatch.Internal;
using Relay.Actors.Metrics;
using Relay.Actors.Transparent;
using Relay.Actors.Tuning;

namespace Relay.Actors.Listening;

/// <summary>
/// Owns one route's listening socket: binds it (reporting <see cref="ListenerProtocol.Bound"/>
/// or <see cref="ListenerProtocol.BindFailed"/> to its parent), then starts one
/// <see cref="AcceptorActor"/> per core dispatcher on it. Circuits are the acceptors' children.
/// </summary>
public sealed class ListenerActor : UntypedActor
{
    private readonly RouteSettings _route;
    private readonly CircuitRegistry _registry;
    private readonly CoreBalancer _balancer;
    private readonly string _node;
    private readonly RouteMetrics _metrics;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private Socket? _socket;
    private IPEndPoint? _bound;
    private bool _draining;
    private int _acceptorsAccepting;
    private readonly List<IActorRef> _drainWaiters = new();

    public ListenerActor(RouteSettings route, CircuitRegistry registry, CoreBalancer balancer, string node, RouteMetrics metrics)
    {
        _route = route;
        _registry = registry;
        _balancer = balancer;
        _node = node;
        _metrics = metrics;
    }

    public static Props Props(RouteSettings route, CircuitRegistry registry, CoreBalancer balancer, string node, RouteMetrics metrics) =>
        PropsFactory.Of(() => new ListenerActor(route, registry, balancer, node, metrics));

    /// <summary>
    /// An acceptor that throws has a bug in its accept loop: restart it. Its restart keeps its
    /// circuits, which do not depend on the loop.
    /// </summary>
    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(maxNrOfRetries: 10, withinTimeRange: TimeSpan.FromMinutes(1), e =>
        {
            _log.Error(e, "{EventName:l} an acceptor of {Route} failed: {Error}", "AcceptorFailed", _route.Name, e.Message);
            return Directive.Restart;
        });

    protected override void PreStart()
    {
        try
        {
            _socket = new Socket(_route.Listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            // Restarting the relay must not wait for old connections in TIME_WAIT: SO_REUSEADDR.
            // Set raw, because .NET's ReuseAddress on Linux also sets SO_REUSEPORT, which would
            // let a second process bind the same port and silently take half the connections.
            _socket.SetRawSocketOption(Epoll.SOL_SOCKET, Epoll.SO_REUSEADDR, BitConverter.GetBytes(1));
            // Client-side options go on the listener: accepted sockets inherit them, and
            // buffers and MSS must be in place before the handshake to take effect.
            SocketTuner.Apply(_socket, _route.Circuit.ClientSide);
            if (_route.Transparent?.Interception == Interception.Tproxy)
            {
                // TPROXY delivers connections addressed to foreign hosts; only an
                // IP_TRANSPARENT socket may accept them.
                TransparentSockets.MakeTransparent(_socket, $"route {_route.Name} (interception = tproxy)");
            }

            _socket.Bind(_route.Listen);
            _socket.Listen(_route.Backlog);
        }
        catch (SocketException e)
        {
            _socket?.Dispose();
            _socket = null;
            var problem = e.SocketErrorCode switch
            {
                SocketError.AddressAlreadyInUse => $"route {_route.Name}: cannot listen on {_route.Listen}: address already in use",
                SocketError.AddressNotAvailable => $"route {_route.Name}: cannot listen on {_route.Listen}: no such local address",
                SocketError.AccessDenied => $"route {_route.Name}: cannot listen on {_route.Listen}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
                _ => $"route {_route.Name}: cannot listen on {_route.Listen}: {e.Message}",
            };
            Context.Parent.Tell(new ListenerProtocol.BindFailed(_route.Name, _route.Listen, problem));
            Context.Stop(Self);
            return;
        }
        catch (Exception e) when (e is SocketTuningException)
        {
            _socket?.Dispose();
            _socket = null;
            Context.Parent.Tell(new ListenerProtocol.BindFailed(_route.Name, _route.Listen, $"route {_route.Name}: {e.Message}"));
            Context.Stop(Self);
            return;
        }

        var bound = (IPEndPoint)_socket.LocalEndPoint!;
        _bound = bound;
        ListeningAddresses.For(Context.System).Add(_route.Name, bound); // the transparent routes' loop guard
        for (var core = 0; core < _balancer.Cores; core++)
        {
            Context.ActorOf(AcceptorActor.Props(_socket, core, _route, _registry, _balancer, _node, _metrics)
                .WithDispatcher(CoreDispatchers.IdFor(core)), "acceptor-" + core.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        _log.Info("{EventName:l} route {Route} listening on {Listen}, relaying to {Upstream}",
            "ListenerBound", _route.Name, bound.ToString(), _route.Upstream.ToString());
        Context.Parent.Tell(new ListenerProtocol.Bound(_route.Name, bound));
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
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
                    CloseForDrain();
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
        _log.Info("{EventName:l} route {Route} stopped accepting on {Listen}; {Active} open circuit(s) run to their end",
            "RouteDraining", _route.Name, _bound?.ToString() ?? "?", _metrics.Active);
        foreach (var waiter in _drainWaiters)
        {
            waiter.Tell(new ListenerProtocol.Draining(_route.Name));
        }

        _drainWaiters.Clear();
    }

    protected override void PostStop()
    {
        _socket?.Dispose();
        ListeningAddresses.For(Context.System).Remove(_route.Name);
    }
}
