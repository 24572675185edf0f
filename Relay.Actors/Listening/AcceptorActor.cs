using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Event;
using Relay.Actors.Circuits;
using Relay.Actors.Configuration;
using Relay.Actors.Dispatch;
using Relay.Actors.Internal;
using Relay.Actors.Listening.Admission;
using Relay.Actors.Logging;
using Relay.Actors.Metrics;
using Relay.Actors.Sockets;
using Relay.Actors.Upstreams;

namespace Relay.Actors.Listening;

/// <summary>
/// Accepts connections of one route on one core: every core's event loop watches the
/// route's shared listening socket (EPOLLEXCLUSIVE: one idle core is woken per connection),
/// and its acceptor calls accept4 inline, so a new circuit starts on the thread that
/// accepted it without any thread hop. The core with the fewest live circuits still wins
/// when this one is busier (<see cref="CoreBalancer"/>). Accepts are drained in a loop until
/// EAGAIN, so a burst costs one wake-up, not one per connection.
/// <para>
/// Its circuits' supervisors are its children, and each serves one circuit after another: a
/// closed circuit's supervisor parks in this acceptor's <see cref="CircuitParking"/>, and the
/// next circuit started on its core goes to it rather than to a new actor.
/// </para>
/// </summary>
public sealed partial class AcceptorActor : UntypedActor, IWithTimers
{
    private readonly RelayNodeContext _node;
    private readonly Socket _listener;
    private readonly int _core;
    private readonly RouteSettings _route;
    private readonly RouteMetrics _metrics;
    private readonly UpstreamPool? _pool;
    private readonly Action<CircuitEntry> _onCircuitClosed;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly CircuitParking _parking;
    private readonly CircuitRoute _circuitRoute;
    private readonly Props?[] _supervisorProps; // by core: the supervisors' shared Props (CircuitSupervisor.Shared)
    private IoRegistration? _io;
    private bool _stopped;
    private int _supervisorsMade; // names each new supervisor: circuit-1, circuit-2, ... (not circuit ids: it serves many)

    private AcceptorActor(RelayNodeContext node, Socket listener, int core, RouteSettings route, RouteMetrics metrics, UpstreamPool? pool,
        CircuitParking parking)
    {
        _node = node;
        _listener = listener;
        _core = core;
        _route = route;
        _metrics = metrics;
        _pool = pool;
        // One hook for all of this acceptor's circuits: each one's ticket is on its entry.
        _onCircuitClosed = entry =>
        {
            _node.Balancer.Release(entry.Core);
            entry.Ticket?.Release();
        };
        _parking = parking;
        _circuitRoute = new CircuitRoute(route, node.Registry, metrics, pool, parking);
        _supervisorProps = new Props?[node.Balancer.Cores];
    }

    public ITimerScheduler Timers { get; set; } = null!;

    /// <remarks>
    /// The parking lot is made here, once, rather than by the actor: a restarted acceptor keeps
    /// its circuits (see <see cref="PreRestart"/>), and so must keep the lot they park in.
    /// </remarks>
    public static Props Props(RelayNodeContext node, Socket listener, int core, RouteSettings route, RouteMetrics metrics,
        UpstreamPool? pool = null)
    {
        var parking = new CircuitParking(node.Balancer.Cores);
        return PropsFactory.Of(() => new AcceptorActor(node, listener, core, route, metrics, pool, parking));
    }

    /// <summary>
    /// A circuit that throws is broken on its own: stop it (its PostStop resets both of its
    /// sockets and logs why) and never let it touch the acceptor or any other circuit.
    /// </summary>
    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(e =>
        {
            RelayEvents.CircuitFailed.LogException(_log, e, _route.Name, e.Message);
            return Directive.Stop;
        });

    protected override void PreStart()
    {
        DescriptorReserve.Ensure();
        try
        {
            _io = CoreEventLoop.Require().RegisterListener(_listener);
        }
        catch (ObjectDisposedException)
        {
            // Restarted after the route was drained: there is nothing left to accept from,
            // and the circuits (this actor's children) must live on.
            _stopped = true;
            return;
        }

        AcceptWhileReady();
    }

    protected override void PreRestart(Exception reason, object message)
    {
        // Keep the circuits: they are independent of the accept loop that failed.
        Unregister();
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case SocketReady or RetryAccept when _stopped:
                // Raced the drain: the listening socket is closing, nothing to accept.
                break;

            case SocketReady:
                AcceptWhileReady();
                break;

            case RetryAccept:
                AcceptWhileReady();
                break;

            case ProxyHeaderReceiver.Received received:
                OnProxyHeaderReceived(received);
                break;

            case ListenerProtocol.AdoptCircuits adopt:
                AdoptAll(adopt.Circuits);
                break;

            case ListenerProtocol.StopWhenIdle or StopIfIdle:
                // A retired route: its circuits keep their settings and end on their own; a
                // parent cannot stop without stopping them, so look again each second. Parked
                // supervisors serve no circuit: they stop now, and those still closing find the
                // lot closed and stop on their own.
                var parked = _parking.Close();
                foreach (var supervisor in parked)
                {
                    Context.Stop(supervisor);
                }

                if (Context.GetChildren().Count() <= parked.Count)
                {
                    Context.Stop(Self);
                }
                else if (message is ListenerProtocol.StopWhenIdle)
                {
                    Timers.StartPeriodicTimer(StopIfIdle.Instance, StopIfIdle.Instance, TimeSpan.FromSeconds(1));
                }

                break;

            case ListenerProtocol.StopAccepting:
                _stopped = true;
                ForgetPause();
                Timers.CancelAll();
                Unregister();
                Sender.Tell(ListenerProtocol.StoppedAccepting.Instance);
                break;

            default:
                Unhandled(message);
                break;
        }
    }

    private void AcceptWhileReady()
    {
        while (true)
        {
            // After EMFILE/ENFILE nobody accepts until the reserve is back (see DescriptorReserve).
            if (DescriptorReserve.IsReleased && !DescriptorReserve.TryReacquire())
            {
                PauseAccepting(SocketError.TooManyOpenSockets);
                return;
            }

            SocketError result;
            Socket? client;
            try
            {
                result = NonBlockingAccept.TryAccept(_listener, out client);
            }
            catch (ObjectDisposedException)
            {
                return;
            }

            if (result == SocketError.Success)
            {
                ResumeIfPaused();
                Admit(client!);
                continue;
            }

            if (result == SocketError.WouldBlock)
            {
                ResumeIfPaused();
                _io!.AwaitReadable(Self);
                return;
            }

            // EMFILE/ENFILE and friends: pause with a back-off instead of spinning or dying.
            if (result == SocketError.TooManyOpenSockets)
            {
                DescriptorReserve.Release(); // headroom for the runtime and the open circuits
            }

            PauseAccepting(result);
            return;
        }
    }

    private void StartCircuit(Socket client, IPEndPoint remote, AdmissionTicket ticket, IPEndPoint? proxiedDestination)
    {
        var id = _node.Registry.NextId();
        var core = _node.Balancer.Acquire(preferred: _core);
        var entry = new CircuitEntry(id, _route.Name, _node.Name, remote, _route.Upstreams, core, ActorRefs.Nobody)
        {
            ProxiedDestination = proxiedDestination,
            Ticket = ticket,
        };
        // Counted before the circuit starts: on another core it may close before this returns.
        _metrics.OnCircuitStarted();
        StartSupervisor(new CircuitStart(entry, client, _onCircuitClosed));
    }

    /// <summary>
    /// Gives <paramref name="start"/> to a supervisor parked on the circuit's core, or to a new
    /// one, as a message either way (a new one is made from its core's shared Props). The entry
    /// names its supervisor before the circuit can be listed (the supervisor lists it as soon as
    /// it has the message, on its own thread).
    /// </summary>
    private void StartSupervisor(CircuitStart start)
    {
        var entry = start.Entry;
        if (_parking.TryTake(entry.Core) is { } parked)
        {
            entry.Supervisor = parked;
            parked.Tell(start, Self);
            return;
        }

        var props = _supervisorProps[entry.Core] ??=
            CircuitSupervisor.Shared(_circuitRoute, CoreDispatchers.IdFor(entry.Core));
        var supervisor = Context.ActorOf(props, "circuit-" + (++_supervisorsMade).ToString(CultureInfo.InvariantCulture));
        entry.Supervisor = supervisor;
        supervisor.Tell(start, Self);
    }

    /// <summary>
    /// A circuit handed over from another node becomes one of this route's circuits here, as
    /// an accepted one does (admission counts, a core from the balancer, this acceptor its
    /// parent), except that it keeps its identity and starts established.
    /// </summary>
    private void AdoptAll(IReadOnlyList<MovedCircuit> circuits)
    {
        var adopted = new List<CircuitEntry>(circuits.Count);
        var refused = new List<ListenerProtocol.CircuitNotAdopted>();
        foreach (var moved in circuits)
        {
            if (_node.Registry.Contains(moved.Id))
            {
                // A live circuit of this node already has the id (possible only if this node
                // served while the other did): the moved one cannot keep it.
                refused.Add(new ListenerProtocol.CircuitNotAdopted(moved.Id, $"circuit id {moved.Id} is in use on this node"));
                continue;
            }

            adopted.Add(Adopt(moved));
        }

        Sender.Tell(new ListenerProtocol.CircuitsAdopted(adopted, refused));
    }

    private CircuitEntry Adopt(MovedCircuit moved)
    {

        var ticket = Admission.AdmitMoved(moved.Client is IPEndPoint ip ? ip.Address : IPAddress.None);
        var core = _node.Balancer.Acquire(preferred: _core);
        var entry = new CircuitEntry(moved.Id, _route.Name, _node.Name, moved.Client, moved.Upstream, core, ActorRefs.Nobody)
        {
            ProxiedDestination = moved.ProxiedDestination,
            OpenedAt = moved.OpenedAt,
            Moves = moved.Moves,
            MovedAt = DateTimeOffset.UtcNow,
            Ticket = ticket,
        };
        entry.Counters.Restore(moved.BytesUp, moved.BytesDown, moved.ReadUp, moved.ReadDown, moved.QuietMs);
        _metrics.OnCircuitRestored(moved.BytesUp, moved.BytesDown);
        StartSupervisor(new CircuitStart(entry, moved.Sockets.Client, _onCircuitClosed, moved.Sockets));
        return entry;
    }

    protected override void PostStop()
    {
        _parking.Close(); // the parked supervisors are children: they stop with this actor
        ForgetPause();
        Unregister();
    }

    private void Unregister()
    {
        if (_io is { } io)
        {
            io.Loop.Unregister(io);
            _io = null;
        }
    }

    private sealed class StopIfIdle : INoSerializationVerificationNeeded
    {
        public static readonly StopIfIdle Instance = new();
    }

    private sealed class RetryAccept : INoSerializationVerificationNeeded
    {
        public static readonly RetryAccept Instance = new();
    }
}
