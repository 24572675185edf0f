using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors.Internal;
using Akka.Event;
using Relay.Actors.Circuits;
using Relay.Actors.Circuits.Internal;
using Relay.Actors.Configuration;
using Relay.Actors.Dispatch;
using Relay.Actors.Tuning;

namespace Relay.Actors.Listening;

/// <summary>
/// Accepts the connections of one route and gives each its own <see cref="CircuitSupervisor"/>
/// on the least-loaded core. Accepts are drained in a loop while the kernel has them ready,
/// so a burst of connections costs one wake-up, not one per connection.
/// </summary>
public sealed class ListenerActor : UntypedActor, IWithTimers
{
    private static readonly TimeSpan AcceptRetryDelay = TimeSpan.FromMilliseconds(100);

    // <sys/socket.h> on Linux
    private const int SolSocket = 1;
    private const int SoReuseAddr = 2;

    private readonly RouteSettings _route;
    private readonly CircuitRegistry _registry;
    private readonly CoreBalancer _balancer;
    private readonly string _node;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Action<CircuitEntry> _onCircuitClosed;
    private Socket? _socket;
    private ActorSocketEventArgs? _accept;
    private string? _lastAcceptError;

    public ITimerScheduler Timers { get; set; } = null!;

    public ListenerActor(RouteSettings route, CircuitRegistry registry, CoreBalancer balancer, string node)
    {
        _route = route;
        _registry = registry;
        _balancer = balancer;
        _node = node;
        _onCircuitClosed = entry => _balancer.Release(entry.Core);
    }

    public static Props Props(RouteSettings route, CircuitRegistry registry, CoreBalancer balancer, string node) =>
        PropsFactory.Of(() => new ListenerActor(route, registry, balancer, node));

    /// <summary>
    /// A circuit that throws is broken on its own: stop it (its PostStop resets both of its
    /// sockets and logs why) and never let it touch the listener or any other circuit.
    /// </summary>
    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(e =>
        {
            _log.Error(e, "{EventName:l} a circuit of {Route} failed: {Error}", "CircuitFailed", _route.Name, e.Message);
            return Directive.Stop;
        });

    protected override void PreStart()
    {
        try
        {
            _socket = new Socket(_route.Listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            // Restarting the relay must not wait for old connections in TIME_WAIT: SO_REUSEADDR.
            // Set raw, because .NET's ReuseAddress on Linux also sets SO_REUSEPORT, which would
            // let a second process bind the same port and silently take half the connections.
            _socket.SetRawSocketOption(SolSocket, SoReuseAddr, BitConverter.GetBytes(1));
            // Client-side options go on the listener: accepted sockets inherit them, and
            // buffers and MSS must be in place before the handshake to take effect.
            SocketTuner.Apply(_socket, _route.Circuit.ClientSide);
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
        catch (Exception e)
        {
            _socket?.Dispose();
            _socket = null;
            Context.Parent.Tell(new ListenerProtocol.BindFailed(_route.Name, _route.Listen, $"route {_route.Name}: {e.Message}"));
            Context.Stop(Self);
            return;
        }

        var bound = (IPEndPoint)_socket.LocalEndPoint!;
        _log.Info("{EventName:l} route {Route} listening on {Listen}, relaying to {Upstream}",
            "ListenerBound", _route.Name, bound.ToString(), _route.Upstream.ToString());
        Context.Parent.Tell(new ListenerProtocol.Bound(_route.Name, bound));
        _accept = new ActorSocketEventArgs(Self);
        AcceptWhileReady();
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case PumpProtocol.IoCompleted:
                if (OnAcceptCompleted())
                {
                    AcceptWhileReady();
                }

                break;

            case RetryAccept:
                AcceptWhileReady();
                break;

            default:
                Unhandled(message);
                break;
        }
    }

    private void AcceptWhileReady()
    {
        var socket = _socket;
        var accept = _accept;
        if (socket is null || accept is null)
        {
            return;
        }

        while (true)
        {
            accept.AcceptSocket = null;
            bool pending;
            try
            {
                pending = socket.AcceptAsync(accept);
            }
            catch (ObjectDisposedException)
            {
                return;
            }

            if (pending || !OnAcceptCompleted())
            {
                return;
            }
        }
    }

    /// <returns>Whether to keep accepting right away.</returns>
    private bool OnAcceptCompleted()
    {
        var accept = _accept!;
        if (accept.SocketError == SocketError.OperationAborted)
        {
            return false;
        }

        if (accept.SocketError != SocketError.Success)
        {
            // EMFILE/ENFILE and friends: pause briefly instead of spinning or dying, and log
            // a problem once rather than once per attempt.
            var problem = accept.SocketError.ToString();
            if (problem != _lastAcceptError)
            {
                _lastAcceptError = problem;
                _log.Warning("{EventName:l} route {Route} cannot accept: {Error}; retrying every {RetryMs} ms",
                    "AcceptFailed", _route.Name, problem, (int)AcceptRetryDelay.TotalMilliseconds);
            }

            Timers.StartSingleTimer(RetryAccept.Instance, RetryAccept.Instance, AcceptRetryDelay);
            return false;
        }

        _lastAcceptError = null;
        var client = accept.AcceptSocket!;
        StartCircuit(client);
        return true;
    }

    private void StartCircuit(Socket client)
    {
        EndPoint remote;
        try
        {
            remote = client.RemoteEndPoint!;
        }
        catch (SocketException)
        {
            // The client reset before we looked: there is no circuit to make.
            client.Dispose();
            return;
        }

        var id = _registry.NextId();
        var core = _balancer.Acquire();
        var entry = new CircuitEntry(id, _route.Name, _node, remote, _route.Upstream.ToString(), core, ActorRefs.Nobody);
        var props = CircuitSupervisor.Props(entry, client, _route, _registry, _onCircuitClosed)
            .WithDispatcher(CoreDispatchers.IdFor(core));
        var supervisor = Context.ActorOf(props, "circuit-" + id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        entry.Supervisor = supervisor;
    }

    protected override void PostStop()
    {
        _socket?.Dispose();
        _accept?.Dispose();
    }

    private sealed class RetryAccept : INoSerializationVerificationNeeded
    {
        public static readonly RetryAccept Instance = new();
    }
}
