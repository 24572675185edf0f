using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors.Internal;
using Akka.Event;
using Relay.Actors.Circuits.Internal;
using Relay.Actors.Circuits.ProxyProtocol;
using Relay.Actors.Configuration;
using Relay.Actors.Dispatch;
using Relay.Actors.Logging;
using Relay.Actors.Metrics;
using Relay.Actors.Sockets;
using Relay.Actors.Transparent;
using Relay.Actors.Tuning;
using Relay.Actors.Upstreams;

namespace Relay.Actors.Circuits;

/// <summary>
/// Owns one circuit: the accepted client socket, the upstream socket it connects, and the
/// reader and writer children that pump both directions (a lane per direction in each; the
/// reader writes inline, and the writer, started when a destination first falls behind,
/// holds the backlog). It alone decides how the circuit ends:
/// <list type="bullet">
/// <item>EOF on one side becomes shutdown(SHUT_WR) on the other once every byte before it is
/// in the kernel (the pump holding the last byte does it and reports
/// <see cref="PumpProtocol.DirectionFinished"/>);</item>
/// <item>a reset or error on either side aborts both sockets with SO_LINGER 0, so the peer
/// of the other side sees a reset too;</item>
/// <item>the circuit closes when both directions have finished, and every end has a reason.</item>
/// </list>
/// Its one state is a <see cref="CircuitPhase"/>: each phase has a handler here, the entry's
/// public <see cref="CircuitState"/> follows every move, and a move the phase does not allow
/// throws, so the circuit is reset and its parent stops it.
/// <para>
/// A supervisor serves one circuit at a time, and then, with its reader and writer, the next
/// circuit its acceptor starts on the same core: a closed circuit's actors wait in the
/// acceptor's <see cref="CircuitParking"/> instead of stopping (see there for why). The fields
/// below are split accordingly: the route's and the actors' own, kept for the supervisor's
/// life, and the circuit's, set by <see cref="Begin"/> and cleared when it parks.
/// </para>
/// </summary>
public sealed class CircuitSupervisor : UntypedActor
{
    // ---- the route's, and this supervisor's own: kept from circuit to circuit
    private readonly CircuitRoute _route;
    // Made on first use: a logger holds its source (the actor's full path) as a string, and
    // most circuits never log anything but their close line (RouteMetrics counts the rest).
    private ILoggingAdapter? _logger;
    private int _core;
    private LoopTimer? _idleTimer;
    private IActorRef? _reader;
    private IActorRef? _writer;
    // Never reset: an attempt's number also marks its timer and its DNS answer, which may
    // arrive after the circuit that made them has closed and the next one has begun.
    private int _attempt;
    private CircuitStart? _first;
    private int _pumpsParking; // answers to PumpProtocol.Park still awaited
    private bool _parked;

    // ---- the circuit served now
    private CircuitEntry _entry = null!;
    private Action<CircuitEntry>? _onClosed;
    private long _startedMs;
    private IoRegistration? _clientIo;
    private IoRegistration? _upstreamIo;
    private LoopTimer? _connectTimer;
    private long _halfClosedAtMs;
    private long _connectStartedTicks;
    private ulong _triedMembers; // bit i: pool member i was tried by this circuit
    private int _member = -1;    // the member of the current attempt, or of the established connection
    private bool _upstreamKeepAlivePending;
    private CircuitPhase _phase = CircuitPhase.Closed;
    private PumpContext? _pumps;
    private bool _writerBegun; // the writer (kept from an earlier circuit, maybe) has this circuit's pumps
    // A handover in progress, made when it starts: most circuits never freeze, and an idle
    // one should not carry its four fields.
    private FreezeInProgress? _freezing;

    /// <summary>How old a circuit is when its upstream's keepalive options are set.</summary>
    internal static readonly TimeSpan KeepAliveDelay = TimeSpan.FromSeconds(1);

    private CircuitSupervisor(CircuitStart? first, CircuitRoute route)
    {
        _first = first;
        _route = route.ForSupervisor();
    }

    /// <param name="entry">The registry entry the listener made for this circuit.</param>
    /// <param name="client">The accepted socket; the supervisor owns it from now on.</param>
    /// <param name="route">The route's settings, fixed for the circuit's life.</param>
    /// <param name="registry">Where the circuit is listed while it lives.</param>
    /// <param name="onClosed">Called once, on the circuit's thread, when the circuit has closed.</param>
    /// <param name="metrics">The route's counters: the connect time and the end are recorded there.</param>
    /// <param name="pool">The route's shared upstream pool; null makes a private one from <paramref name="route"/>.</param>
    /// <param name="dispatcher">The core dispatcher to run on (the children follow it); null for the caller's default.</param>
    /// <remarks>Without a <see cref="CircuitParking"/> the supervisor stops when its one circuit closes.</remarks>
    public static Props Props(CircuitEntry entry, Socket client, RouteSettings route, CircuitRegistry registry, Action<CircuitEntry>? onClosed = null,
        RouteMetrics? metrics = null, UpstreamPool? pool = null, string? dispatcher = null) =>
        Props(new CircuitStart(entry, client, onClosed), route, registry, metrics, pool, parking: null, dispatcher);

    /// <summary>
    /// A supervisor for <paramref name="first"/> (accepted, or restored on this node after a
    /// handover: then it starts established, with the entry's id, age and counters carried over,
    /// and its pumps first deliver what the restore says each side is owed), which parks in
    /// <paramref name="parking"/> when that circuit closes and serves the next
    /// <see cref="CircuitStart"/> it is sent.
    /// </summary>
    internal static Props Props(CircuitStart first, RouteSettings route, CircuitRegistry registry, RouteMetrics? metrics, UpstreamPool? pool,
        CircuitParking? parking, string? dispatcher) =>
        PropsFactory.Once((first, shared: new CircuitRoute(route, registry, metrics, pool, parking)),
            static a => new CircuitSupervisor(a.first, a.shared), dispatcher);

    /// <summary>
    /// Props for the supervisors of a route's acceptor on one core's <paramref name="dispatcher"/>,
    /// made once and shared by all of them: a supervisor made from these starts parked, and its
    /// first circuit comes as a <see cref="CircuitStart"/> message, as every later one does. The
    /// cell keeps its Props for life, so Props that carried the first circuit (with their
    /// producer) were about 150 B per circuit.
    /// </summary>
    internal static Props Shared(CircuitRoute route, string dispatcher) =>
        PropsFactory.Of(() => new CircuitSupervisor(null, route), dispatcher);

    private CircuitSettings Settings => _route.Settings.Circuit;

    /// <summary>
    /// Half-closed if the old node had carried a direction's FIN. A FIN still owed is carried
    /// here, after its bytes, and moves the circuit on as any FIN does.
    /// </summary>
    private static CircuitPhase RestoredPhase(RestoredCircuit restored) =>
        restored.Up == DirectionEnd.FinCarried ? CircuitPhase.UpFinished
        : restored.Down == DirectionEnd.FinCarried ? CircuitPhase.DownFinished
        : CircuitPhase.Established;

    /// <summary>The client's address for log lines, formatted only when a line is written (most circuits write one).</summary>
    private string ClientText => _entry.Client?.ToString() ?? "?";

    /// <summary>
    /// The sockets' handles, kept on the entry (which lists them for management) and nowhere
    /// else: a Socket object is made only where one is needed (CircuitSockets.View).
    /// </summary>
    private SafeSocketHandle Client => _entry.ClientHandle!;

    private SafeSocketHandle? Upstream => _entry.UpstreamHandle;

    /// <summary>The core thread's event loop: this supervisor always runs there.</summary>
    private static CoreEventLoop Loop => CoreEventLoop.Require();

    private ILoggingAdapter Log => _logger ??= Context.GetLogger();

    /// <summary>The node's current level (PUT /loglevel changes it), read without making a logger.</summary>
    private bool DebugEnabled => Context.System.EventStream.LogLevel <= LogLevel.DebugLevel;

    /// <summary>
    /// A reader or writer that throws is a bug in this circuit alone: escalate, so the
    /// listener stops this supervisor, whose PostStop resets both sockets with a logged
    /// reason. Restarting a pump would lose its position in the byte stream.
    /// </summary>
    protected override SupervisorStrategy SupervisorStrategy() =>
        new OneForOneStrategy(_ => Directive.Escalate);

    protected override void PreStart()
    {
        if (_first is { } first)
        {
            _first = null;
            Begin(first);
        }
        else
        {
            _parked = true; // made from shared Props: the first circuit is a message
        }
    }

    /// <summary>
    /// Takes on a circuit: the first as a message (or, for a one-off supervisor, through its
    /// props), each later one after parking.
    /// </summary>
    private void Begin(CircuitStart start)
    {
        var restored = start.Restored;
        var client = start.Client;
        _entry = start.Entry;
        _core = _entry.Core;
        _entry.ClientHandle = CircuitSockets.Detach(client);
        _onClosed = start.OnClosed;
        // A restored circuit is listed as established (or half-closed) from its first moment: its sockets are.
        _phase = restored is null ? CircuitPhase.Connecting : RestoredPhase(restored);
        // A restored circuit keeps its age: its close line reports the whole life, on both nodes.
        _startedMs = Environment.TickCount64 - (restored is null ? 0 : (long)(DateTimeOffset.UtcNow - _entry.OpenedAt).TotalMilliseconds);
        _entry.ThreadId = Loop.ThreadId;
        _entry.State = _phase.ToPublicState();
        _route.Registry.Add(_entry);
        try
        {
            _clientIo = Loop.Register(client);
        }
        catch (SocketException e)
        {
            ResetAndClose(CloseReasons.ClientError, e.Message);
            return;
        }

        if (restored is not null)
        {
            StartRestored(restored, client);
            return;
        }
        if (DebugEnabled)
        {
            RelayEvents.CircuitOpened.Log(Log, _entry.Id, _entry.Route, ClientText, _route.Settings.Upstreams.ToString());
        }

        if (TryBeginTransparentConnect(client))
        {
            return;
        }

        TryNextMember(CloseReasons.UpstreamError, "no upstream");
    }

    /// <summary>
    /// The phase picks the handler, rather than Akka's Become: each Become makes two delegates,
    /// and the first one turns the cell's light state into its full form (a behaviour stack
    /// and the death-watch collections), half a kilobyte per circuit for what one field does
    /// (measured: 9.5 KB allocated per connection with the field, 10.0 with Become).
    /// A handler that throws has met a state it does not understand: the circuit is reset
    /// here, with its reason logged, and the failure goes on to the parent, which stops it.
    /// </summary>
    protected override void OnReceive(object message)
    {
        try
        {
            switch (_phase)
            {
                case CircuitPhase.Connecting:
                    Connecting(message);
                    break;
                case CircuitPhase.Established:
                    Established(message);
                    break;
                case CircuitPhase.UpFinished:
                case CircuitPhase.DownFinished:
                    HalfClosed(message);
                    break;
                case CircuitPhase.Freezing:
                    Freezing(message);
                    break;
                case CircuitPhase.Frozen:
                    Frozen(message);
                    break;
                case CircuitPhase.Closed:
                    Closed(message);
                    break;
                default:
                    throw Impossible($"no handler for {message.GetType().Name}");
            }
        }
        catch (Exception e)
        {
            if (_phase != CircuitPhase.Closed)
            {
                ResetAndClose(CloseReasons.InternalError, e.Message, stopping: true);
            }

            throw;
        }
    }

    /// <summary>The one way the phase changes: the move must be one <see cref="CircuitPhases.CanMove"/> allows.</summary>
    private void MoveTo(CircuitPhase next)
    {
        if (!CircuitPhases.CanMove(_phase, next))
        {
            throw Impossible($"cannot move to {next}");
        }

        _phase = next;
        _entry.State = next.ToPublicState();
    }

    private InvalidOperationException Impossible(string what) =>
        new($"circuit {(_entry is null ? "(none: parked)" : _entry.Id)} in phase {_phase}: {what}");

    // ---------------------------------------------------------------- connecting

    private void Connecting(object message)
    {
        switch (message)
        {
            case Resolved resolved when resolved.Attempt != _attempt:
                break; // an answer for an attempt already given up

            case Resolved resolved:
                var target = resolved.Addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork)
                             ?? resolved.Addresses.FirstOrDefault();
                if (target is null)
                {
                    OnAttemptFailed(CloseReasons.UpstreamDnsFailed, resolved.Error?.GetBaseException().Message ?? "no addresses");
                    return;
                }

                BeginConnect(new IPEndPoint(target, CurrentMember.Port));
                break;

            case SocketReady:
                var outcome = NonBlockingConnect.Finish(Upstream!, _upstreamIo!);
                if (outcome == SocketError.WouldBlock)
                {
                    _upstreamIo!.AwaitWritable(Self);
                }
                else
                {
                    OnConnectCompleted(outcome);
                }

                break;

            case ConnectTimedOut timedOut when timedOut.Attempt == _attempt:
                OnAttemptFailed(CloseReasons.ConnectTimeout, $"no answer from {_entry.Upstream} within {Settings.ConnectTimeout.TotalSeconds:0.###}s");
                break;

            case ConnectTimedOut:
                break; // the timer of an attempt already given up

            case PumpProtocol.DirectionFinished finished:
                // The pumps start as the circuit is established: no direction can end before.
                throw Impossible($"{finished.Direction} finished");

            case CircuitCommands.Abort abort when abort.CircuitId == _entry.Id:
                ResetAndClose(abort.Reason, "reset on request");
                break;

            case CircuitHandoverProtocol.Freeze freeze when NotThisCircuit(freeze):
                break;

            case CircuitHandoverProtocol.Freeze freeze:
                // Its upstream is not connected yet: it finishes connecting here.
                freeze.ReplyTo.Tell(new CircuitHandoverProtocol.NotMovable(_entry, "connecting"), Self);
                break;

            case CircuitHandoverProtocol.Thaw or CircuitHandoverProtocol.Release or CircuitCommands.Abort:
                break;

            default:
                Unhandled(message);
                break;
        }
    }

    /// <summary>
    /// Transparent gateway mode: the circuit of a <c>mode = transparent</c> route connects to
    /// its connection's original destination, if the route's destination policy and the loop
    /// guard allow it. For such a route, decides the destination and starts connecting (or
    /// refuses) and returns true; for a forward route does nothing and returns false.
    /// </summary>
    private bool TryBeginTransparentConnect(Socket client)
    {
        if (_route.Settings.Transparent is not { } transparent)
        {
            return false;
        }

        var destination = OriginalDestination.Find(client, transparent.Interception, out var problem);
        if (destination is null)
        {
            ResetAndClose(CloseReasons.NoOriginalDestination, problem);
            return true;
        }

        // Shown from now on (GET /circuits, CircuitClosed), a refused destination included.
        _entry.SetUpstream(destination);
        var refusal = transparent.Destinations.Check(destination);
        if (refusal is null && ListeningAddresses.For(Context.System).FindLoop(destination) is { } own)
        {
            refusal = $"{destination} is the relay's own listening address {own} (a loop)";
        }

        if (refusal is not null)
        {
            RelayEvents.DestinationDenied.Log(Log, _entry.Id, _entry.Route, ClientText, _entry.Upstream, refusal);
            ResetAndClose(CloseReasons.DestinationDenied, refusal);
            return true;
        }

        ArmConnectTimer();
        BeginConnect(destination);
        return true;
    }

    private UpstreamAddress CurrentMember => _route.Upstreams.Settings.Members[_member];

    /// <summary>
    /// Starts an attempt on the next member the pool offers that this circuit has not tried.
    /// When none is left, the client is reset with the last attempt's reason.
    /// </summary>
    private void TryNextMember(string lastReason, string lastDetail)
    {
        var member = _route.Upstreams.Pick(_triedMembers);
        if (member < 0)
        {
            ResetAndClose(lastReason, lastDetail);
            return;
        }

        _member = member;
        _triedMembers |= 1UL << member;
        _attempt++;
        var address = CurrentMember;
        _entry.SetUpstream(address);
        ArmConnectTimer();

        if (_route.Upstreams.Members[member].Literal is { } literal)
        {
            BeginConnect(literal);
        }
        else
        {
            // A name is resolved for every circuit, so a DNS change applies to new circuits.
            var attempt = _attempt;
            Dns.GetHostAddressesAsync(address.Host).PipeTo(Self,
                success: addresses => new Resolved(addresses, null, attempt),
                failure: e => new Resolved([], e, attempt));
        }
    }

    /// <summary>
    /// Arms connect-timeout for the current attempt, on the core's own timer heap rather than
    /// Akka's scheduler (see <see cref="LoopTimers"/>). It applies to each attempt; the attempt
    /// number in the message marks the timer of an attempt already given up, which may have
    /// fired into the mailbox before it was cancelled.
    /// </summary>
    private void ArmConnectTimer()
    {
        _connectTimer?.Cancel();
        _connectTimer = Loop.Timers.ScheduleTellOnce(Settings.ConnectTimeout, Self, new ConnectTimedOut(_attempt));
    }

    /// <summary>The current member failed: tell the pool, drop the half-made socket, try the next one.</summary>
    private void OnAttemptFailed(string reason, string detail)
    {
        if (_member < 0)
        {
            // A destination not chosen from the pool (a transparent route's original
            // destination): there is no other member to try.
            ResetAndClose(reason, detail);
            return;
        }

        _route.Upstreams.OnConnectFailed(_member, reason);
        _route.Upstreams.Release(_member);
        if (DebugEnabled)
        {
            RelayEvents.UpstreamConnectFailed.Log(Log, _entry.Id, _entry.Route, _entry.Upstream, reason, detail);
        }

        _member = -1;
        CloseSocket(Upstream, _upstreamIo, reset: false);
        _upstreamIo = null;
        _entry.UpstreamHandle = null;
        TryNextMember(reason, $"{detail}; {_attempt} member(s) tried");
    }

    private void BeginConnect(IPEndPoint endpoint)
    {
        _entry.SetUpstream(endpoint);
        Socket upstream;
        try
        {
            upstream = CircuitSockets.CreateForConnect(endpoint);
            _entry.UpstreamHandle = CircuitSockets.Detach(upstream);
            // Keepalive waits until the circuit is a second old (SetUpstreamKeepAliveIfDue).
            SocketTuner.Apply(upstream, Settings.UpstreamSide, includeKeepAlive: false);
            if (_route.Settings.Transparent is { UpstreamSource: UpstreamSource.Client } && _entry.Client is IPEndPoint client)
            {
                // The upstream socket takes the client's address, so the server sees the real client.
                TransparentSockets.BindToClient(upstream, client, endpoint);
            }

            EgressSource.BindForward(upstream, endpoint, _route.Settings, Context.System);
        }
        catch (Exception e) when (e is SocketException or SocketTuningException)
        {
            // Creating or tuning the socket failed (no descriptors, an option the kernel
            // refuses): this circuit cannot go on, but nothing else is affected.
            ResetAndClose(CloseReasons.UpstreamError, e.Message);
            return;
        }

        // The connect histogram times connect(2) alone; a DNS lookup before it is not in it.
        _connectStartedTicks = Stopwatch.GetTimestamp();
        SocketError started;
        try
        {
            // Registered after connect(2): see NonBlockingConnect.Finish.
            started = NonBlockingConnect.Start(upstream, endpoint);
            if (started is SocketError.WouldBlock or SocketError.Success)
            {
                _upstreamIo = Loop.Register(upstream);
            }
        }
        catch (SocketException e)
        {
            started = e.SocketErrorCode;
        }

        if (started == SocketError.WouldBlock)
        {
            _upstreamIo!.AwaitWritable(Self);
        }
        else
        {
            OnConnectCompleted(started);
        }
    }

    private void OnConnectCompleted(SocketError result)
    {
        if (result != SocketError.Success)
        {
            OnAttemptFailed(CloseReasons.ForConnectError(result), $"{result} from {_entry.Upstream}");
            return;
        }

        if (!UpstreamProxyHeader.TrySend(_route.Settings, _entry, Client, Upstream!, out var headerFailure, out var headerDetail))
        {
            ResetAndClose(headerFailure, headerDetail);
            return;
        }

        // Dropped, not only cancelled: an idle circuit would keep the timer and its message.
        _connectTimer?.Cancel();
        _connectTimer = null;
        if (_member >= 0)
        {
            _route.Upstreams.OnConnected(_member);
        }

        _route.Metrics?.OnUpstreamConnected(Stopwatch.GetTimestamp() - _connectStartedTicks);
        StartPumps();
        MoveTo(CircuitPhase.Established);
        if (DebugEnabled)
        {
            RelayEvents.CircuitEstablished.Log(Log, _entry.Id, _entry.Route, ClientText, _entry.Upstream, Environment.TickCount64 - _startedMs);
        }

        // The first check comes early when the upstream's keepalive is still to be set.
        _upstreamKeepAlivePending = Settings.UpstreamSide.KeepAlive.Enabled;
        ScheduleIdleCheck(_upstreamKeepAlivePending && KeepAliveDelay < Settings.IdleTimeout ? KeepAliveDelay : Settings.IdleTimeout);
    }

    /// <summary>
    /// Sets the upstream's TCP keepalive options once the circuit has lived
    /// <see cref="KeepAliveDelay"/>: probes start after the keepalive idle time (default 60 s)
    /// anyway, and most circuits end well before a second, so they skip four setsockopt calls.
    /// The idle-check timer does it, so it costs no timer of its own.
    /// </summary>
    private bool SetUpstreamKeepAliveIfDue()
    {
        if (!_upstreamKeepAlivePending || Upstream is not { } upstream)
        {
            return true;
        }

        _upstreamKeepAlivePending = false;
        try
        {
            SocketTuner.ApplyKeepAlive(CircuitSockets.View(upstream), Settings.UpstreamSide.KeepAlive);
            return true;
        }
        catch (Exception e) when (e is SocketTuningException or ObjectDisposedException)
        {
            ResetAndClose(CloseReasons.UpstreamError, e.Message);
            return false;
        }
    }

    /// <summary>
    /// The reader, which serves both directions, one lane per direction (see
    /// <see cref="SocketReader"/> for why one actor rather than two), and writes inline while
    /// destinations keep up. The writer, which takes a direction's backlog when its destination
    /// falls behind, is started when the reader first asks (<see cref="StartWriter"/>). Both
    /// run on this supervisor's dispatcher, so a chunk moves between them without a thread
    /// hop, and they share the circuit's <see cref="FinCarrier"/>.
    /// </summary>
    private void StartPumps()
    {
        _pumps = NewPumpContext();
        StartReader(new PumpStart(_pumps));
    }

    /// <summary>The reader of an earlier circuit takes this one's pumps; the first circuit makes it, and gives them to it the same way.</summary>
    private void StartReader(PumpStart start)
    {
        _reader ??= Context.ActorOf(SocketReader.Props(Context.Props.Dispatcher), "reader");
        _reader.Tell(start, Self);
    }

    private PumpContext NewPumpContext() =>
        new(_entry, _clientIo!, _upstreamIo!, Self, Settings.WriteSize, Settings.SegmentsPerDirection, Settings.Splice);

    /// <summary>
    /// Gives the reader its writer: made the first time a circuit of this supervisor needs one,
    /// and kept for the later ones; each circuit hands it its own pumps first (before the reader
    /// hears of it, so the pumps arrive ahead of any segment).
    /// </summary>
    private void StartWriter()
    {
        _writer ??= Context.ActorOf(SocketWriter.Props(Context.Props.Dispatcher), "writer");
        if (!_writerBegun)
        {
            _writer.Tell(_pumps!, Self);
        }

        _writerBegun = true;
        Sender.Tell(new PumpProtocol.WriterStarted(_writer), Self);
    }

    /// <summary>
    /// A circuit restored after a handover: both sockets are connected already, so it starts
    /// established or half-closed, with the options its route sets that a restore does not
    /// carry (keepalive, congestion control), and its reader owes each destination its restored
    /// bytes first, then the FIN of a direction whose source had ended. Its inactivity timer
    /// goes on from the quiet time it had on the old node (the counters carry it).
    /// </summary>
    private void StartRestored(RestoredCircuit restored, Socket client)
    {
        var upstream = restored.Upstream;
        _entry.UpstreamHandle = CircuitSockets.Detach(upstream);
        if (restored.Problem is { } problem)
        {
            ResetAndClose(CloseReasons.InternalError, problem);
            return;
        }

        try
        {
            SocketTuner.ApplyToRestored(client, Settings.ClientSide);
            SocketTuner.ApplyToRestored(upstream, Settings.UpstreamSide);
            _upstreamIo = Loop.Register(upstream);
        }
        catch (Exception e) when (e is SocketException or SocketTuningException)
        {
            ResetAndClose(CloseReasons.UpstreamError, e.Message);
            return;
        }

        _pumps = NewPumpContext();
        StartReader(new PumpStart(_pumps, Restored: true, restored.ToUpstream, restored.ToClient, restored.Up, restored.Down));
        var quiet = TimeSpan.FromMilliseconds(Environment.TickCount64 - _entry.Counters.LastActivityMs);
        var limit = CurrentInactivityLimit();
        ScheduleIdleCheck(quiet < limit ? limit - quiet : TimeSpan.Zero);
    }

    // ---------------------------------------------------------------- established

    private void Established(object message)
    {
        switch (message)
        {
            case PumpProtocol.DirectionFinished finished:
                HalfClose(finished.Direction);
                break;

            default:
                WhileOpen(message);
                break;
        }
    }

    /// <summary>What an established and a half-closed circuit do alike.</summary>
    private void WhileOpen(object message)
    {
        switch (message)
        {
            case PumpProtocol.SideFailed failed:
                ResetAndClose(CloseReasons.ForSocketError(failed.Side, failed.Error), failed.Error.ToString());
                break;

            case PumpProtocol.WriterWanted:
                StartWriter();
                break;

            case IdleCheck:
                OnIdleCheck();
                break;

            case CircuitCommands.Abort abort when abort.CircuitId == _entry.Id:
                ResetAndClose(abort.Reason, "reset on request");
                break;

            case ConnectTimedOut or CircuitCommands.Abort:
                // A timer that fired just as the connection completed, or an abort of an
                // earlier circuit of this supervisor: nothing to do.
                break;

            case CircuitHandoverProtocol.Freeze freeze when NotThisCircuit(freeze):
                break;

            case CircuitHandoverProtocol.Freeze freeze when _route.Settings.Transparent is not null:
                // Its sockets depend on this node's interception (the client's original
                // destination is their local address, kept by this node's conntrack).
                freeze.ReplyTo.Tell(new CircuitHandoverProtocol.NotMovable(_entry, "transparent route"), Self);
                break;

            case CircuitHandoverProtocol.Freeze freeze:
                BeginFreeze(freeze.ReplyTo);
                break;

            case CircuitHandoverProtocol.Thaw or CircuitHandoverProtocol.Release:
                // A handover that gave up on this circuit before it froze (a timeout).
                break;

            default:
                Unhandled(message);
                break;
        }
    }

    private void HalfClose(Direction direction)
    {
        MoveTo(CircuitPhases.Finished(direction));
        _halfClosedAtMs = Environment.TickCount64;
        if (DebugEnabled)
        {
            RelayEvents.CircuitHalfClosed.Log(Log, _entry.Id, _entry.Route, direction == Direction.Up ? "client->upstream" : "upstream->client",
                direction == Direction.Up ? "upstream->client" : "client->upstream");
        }

        // The half-closed timeout is an inactivity limit, like HAProxy's timeout client-fin:
        // a long download after the client's FIN keeps going as long as bytes move.
        _idleTimer?.Cancel();
        ScheduleIdleCheck(CurrentInactivityLimit());
    }

    // ---------------------------------------------------------------- half-closed (up or down finished)

    private void HalfClosed(object message)
    {
        switch (message)
        {
            case PumpProtocol.DirectionFinished finished when CircuitPhases.Finished(finished.Direction) == _phase:
                // Each pump reports a direction once (the FinCarrier sees to it).
                throw Impossible($"{finished.Direction} finished twice");

            case PumpProtocol.DirectionFinished:
                // The direction still open ended too: every byte of both is delivered.
                Close(CloseReasons.Complete);
                break;

            default:
                WhileOpen(message);
                break;
        }
    }

    private TimeSpan CurrentInactivityLimit() =>
        HalfClosedLimitApplies ? Settings.HalfClosedTimeout!.Value : Settings.IdleTimeout;

    /// <summary>
    /// Half-closed, with a half-closed-timeout set below idle-timeout. Unset (the default), a
    /// half-closed circuit is bound by idle-timeout like any other, as HAProxy's client-fin
    /// falls back to its client timeout: a late answer to a request sent with its FIN is the
    /// normal case of a half-close, not the sign of a stuck peer.
    /// </summary>
    private bool HalfClosedLimitApplies =>
        _phase.IsHalfClosed() && Settings.HalfClosedTimeout is { } halfClosed && halfClosed < Settings.IdleTimeout;

    /// <summary>
    /// One timer per circuit, re-armed for the remaining time rather than ticking:
    /// a busy circuit costs one timer per timeout period, not one per chunk.
    /// </summary>
    private void OnIdleCheck()
    {
        if (!SetUpstreamKeepAliveIfDue())
        {
            return;
        }

        var limit = CurrentInactivityLimit();
        var lastMs = Math.Max(_entry.Counters.LastActivityMs, _halfClosedAtMs);
        var quietFor = TimeSpan.FromMilliseconds(Environment.TickCount64 - lastMs);
        if (quietFor >= limit)
        {
            ResetAndClose(HalfClosedLimitApplies ? CloseReasons.HalfClosedTimeout : CloseReasons.IdleTimeout,
                $"no bytes for {quietFor.TotalSeconds:0.###}s");
            return;
        }

        ScheduleIdleCheck(limit - quietFor);
    }

    private void ScheduleIdleCheck(TimeSpan after)
    {
        if (_idleTimer is null)
        {
            _idleTimer = Loop.Timers.ScheduleTellOnce(after, Self, IdleCheck.Instance);
        }
        else
        {
            _idleTimer.Start(after);
        }
    }

    // ---------------------------------------------------------------- closed

    private void Closed(object message)
    {
        switch (message)
        {
            case CircuitStart start when _parked:
                _parked = false;
                Begin(start);
                break;

            case CircuitStart start:
                // Never sent to a supervisor that has not parked: end the circuit rather than lose it.
                CloseSocket(CircuitSockets.Detach(start.Client), null, reset: true);
                throw Impossible($"circuit {start.Entry.Id} given before this one had parked");

            case PumpProtocol.Parked:
                if (--_pumpsParking == 0)
                {
                    Park();
                }

                break;

            case CircuitHandoverProtocol.Freeze freeze:
                freeze.ReplyTo.Tell(new CircuitHandoverProtocol.NotMovable(freeze.Entry, "closed"), Self);
                break;

            default:
                // Completions, timers and failures that race the end of the circuit (or of an
                // earlier one): nothing left to do.
                break;
        }
    }

    /// <summary>
    /// A freeze for another circuit than the one served now (an earlier one, which has closed):
    /// answered for that one, as a closed circuit would.
    /// </summary>
    private bool NotThisCircuit(CircuitHandoverProtocol.Freeze freeze)
    {
        if (ReferenceEquals(freeze.Entry, _entry))
        {
            return false;
        }

        freeze.ReplyTo.Tell(new CircuitHandoverProtocol.NotMovable(freeze.Entry, "closed"), Self);
        return true;
    }

    // ---------------------------------------------------------------- parked: between circuits

    /// <summary>
    /// The circuit has closed (or moved to another node): this supervisor waits for its acceptor's
    /// next circuit on this core, once its pumps have let go of this one. Without a parking lot,
    /// or with the lot full or closed, it stops instead.
    /// </summary>
    private void ParkOrStop()
    {
        if (_route.Parking is null)
        {
            Context.Stop(Self);
            return;
        }

        _pumpsParking = 0;
        foreach (var pump in (ReadOnlySpan<IActorRef?>)[_reader, _writer])
        {
            if (pump is not null)
            {
                pump.Tell(PumpProtocol.Park.Instance, Self);
                _pumpsParking++;
            }
        }

        if (_pumpsParking == 0)
        {
            Park();
        }
    }

    private void Park()
    {
        // Nothing of the old circuit stays reachable from a parked supervisor.
        _entry = null!;
        _onClosed = null;
        _clientIo = _upstreamIo = null;
        _connectTimer = null;
        _halfClosedAtMs = 0;
        _triedMembers = 0;
        _member = -1;
        _upstreamKeepAlivePending = false;
        _pumps = null;
        _writerBegun = false;
        _freezing = null;
        if (_route.Parking!.TryPark(_core, Self))
        {
            _parked = true;
        }
        else
        {
            Context.Stop(Self);
        }
    }

    // ---------------------------------------------------------------- handover: freezing, frozen

    /// <summary>
    /// Stops both pumps for a handover. The reader stops reading at once and the writer after
    /// the segments already sent to it, and the reader then reports what both hold; until then
    /// a direction may still finish (its FIN was on its way) or a side fail.
    /// </summary>
    private void BeginFreeze(IActorRef replyTo)
    {
        _freezing = new FreezeInProgress(replyTo, _phase);
        MoveTo(CircuitPhase.Freezing);
        _reader!.Tell(PumpProtocol.Freeze.Instance, Self);
    }

    private void Freezing(object message)
    {
        switch (message)
        {
            case PumpProtocol.PumpsFrozen frozen:
                OnPumpsFrozen(frozen);
                break;

            case PumpProtocol.DirectionFinished finished when _freezing!.From == CircuitPhase.Established:
                // A FIN carried just before the pumps stopped: the circuit is half-closed now.
                _freezing.From = CircuitPhases.Finished(finished.Direction);
                _halfClosedAtMs = Environment.TickCount64;
                break;

            case PumpProtocol.DirectionFinished:
                // The other direction had finished already: the circuit is complete.
                _freezing!.ReplyTo.Tell(new CircuitHandoverProtocol.NotMovable(_entry, "closed"), Self);
                Close(CloseReasons.Complete);
                break;

            case PumpProtocol.SideFailed failed:
                _freezing!.ReplyTo.Tell(new CircuitHandoverProtocol.NotMovable(_entry, "reset"), Self);
                ResetAndClose(CloseReasons.ForSocketError(failed.Side, failed.Error), failed.Error.ToString());
                break;

            case CircuitHandoverProtocol.Thaw thaw when thaw.CircuitId == _entry.Id:
                _freezing!.ThawWhenFrozen = true;
                break;

            default:
                WhileFrozen(message);
                break;
        }
    }

    private void OnPumpsFrozen(PumpProtocol.PumpsFrozen frozen)
    {
        if (_freezing!.ThawWhenFrozen)
        {
            ThawPumps();
            return;
        }

        // A half-closed circuit moves too: the frozen pumps say which direction ended and
        // whether its FIN was carried or is still owed behind the bytes they hold, and the
        // sockets' images say which FINs the new node puts back. The half-close counts as
        // activity, as the half-closed timeout has it here.
        MoveTo(CircuitPhase.Frozen);
        var quietMs = Math.Max(0, Environment.TickCount64 - Math.Max(_entry.Counters.LastActivityMs, _halfClosedAtMs));
        _freezing.ReplyTo.Tell(new CircuitHandoverProtocol.Frozen(_entry, CircuitSockets.ConnectedView(Client), CircuitSockets.ConnectedView(Upstream!),
            frozen.ToUpstream, frozen.ToClient, quietMs, frozen.Up, frozen.Down), Self);
    }

    private void Frozen(object message)
    {
        switch (message)
        {
            case CircuitHandoverProtocol.Thaw thaw when thaw.CircuitId == _entry.Id:
                ThawPumps();
                break;

            case CircuitHandoverProtocol.Release release when release.CircuitId == _entry.Id:
                ReleaseToOtherNode();
                break;

            default:
                WhileFrozen(message);
                break;
        }
    }

    /// <summary>What a freezing and a frozen circuit do alike: nothing that could touch its sockets.</summary>
    private void WhileFrozen(object message)
    {
        switch (message)
        {
            case IdleCheck:
                // A frozen circuit moves no byte, and its sockets may be in repair mode, where
                // a reset would be silent: the check waits for the thaw (or the new node).
                ScheduleIdleCheck(Settings.IdleTimeout);
                break;

            case CircuitCommands.Abort abort when abort.CircuitId == _entry.Id:
                _freezing!.AbortWhenThawed = abort.Reason;
                break;

            case PumpProtocol.WriterWanted:
                StartWriter();
                break;

            case CircuitHandoverProtocol.Freeze freeze when NotThisCircuit(freeze):
                break;

            case CircuitHandoverProtocol.Freeze freeze:
                freeze.ReplyTo.Tell(new CircuitHandoverProtocol.NotMovable(_entry, "already handing over"), Self);
                break;

            case ConnectTimedOut or CircuitCommands.Abort or CircuitHandoverProtocol.Thaw or CircuitHandoverProtocol.Release:
                // A timer of the connect, or a message about an earlier circuit of this supervisor.
                break;

            default:
                throw Impossible($"{message.GetType().Name} while the pumps are stopped");
        }
    }

    /// <summary>Back to the open phase the circuit froze from; both pumps go on where they stopped.</summary>
    private void ThawPumps()
    {
        var freezing = _freezing!;
        MoveTo(freezing.From);
        _freezing = null;
        _reader!.Tell(PumpProtocol.Thaw.Instance, Self);
        if (freezing.AbortWhenThawed is { } reason)
        {
            ResetAndClose(reason, "reset on request");
        }
    }

    /// <summary>
    /// The circuit runs on another node now: off this core's event loop (the sockets stay open
    /// for the handover, which closes them silently), out of the table and the route's counts,
    /// with one Debug line, and this supervisor and its pumps park (or stop).
    /// </summary>
    private void ReleaseToOtherNode()
    {
        _clientIo?.Loop.Unregister(_clientIo);
        _upstreamIo?.Loop.Unregister(_upstreamIo);
        LeaveTable();
        var counters = _entry.Counters;
        _route.Metrics?.OnCircuitHandedOver(counters.BytesUp, counters.BytesDown);
        if (DebugEnabled)
        {
            RelayEvents.CircuitHandedOver.Log(Log, _entry.Id, _entry.Route, ClientText, _entry.Upstream, counters.BytesUp, counters.BytesDown);
        }

        Sender.Tell(new CircuitHandoverProtocol.Released(_entry), Self);
        ParkOrStop();
    }

    /// <summary>
    /// What ending here and moving away share: the pooled upstream slot and the timers go,
    /// the phase is Closed, and the circuit leaves the route's counts (the hook releases its
    /// admission ticket and core slot) before it leaves the table, so a circuit no longer
    /// listed no longer counts against the route's limits.
    /// </summary>
    private void LeaveTable()
    {
        if (_member >= 0)
        {
            _route.Upstreams.Release(_member);
            _member = -1;
        }

        _connectTimer?.Cancel();
        _idleTimer?.Cancel();
        MoveTo(CircuitPhase.Closed);
        _onClosed?.Invoke(_entry);
        _route.Registry.Remove(_entry.Id);
    }

    /// <summary>Both directions ended with a FIN: close both sockets normally.</summary>
    private void Close(string reason)
    {
        CloseSocket(Client, _clientIo, reset: false);
        CloseSocket(Upstream, _upstreamIo, reset: false);
        Finish(reason, detail: null);
    }

    /// <summary>Reset both connections (SO_LINGER 0 sends RST) and end the circuit.</summary>
    private void ResetAndClose(string reason, string? detail, bool stopping = false)
    {
        CloseSocket(Client, _clientIo, reset: true);
        CloseSocket(Upstream, _upstreamIo, reset: true);
        Finish(reason, detail, stopping);
    }

    private static void CloseSocket(SafeSocketHandle? socket, IoRegistration? io, bool reset)
    {
        if (socket is null)
        {
            return;
        }

        // Out of the core's epoll first: a closed descriptor number may be reused at once.
        io?.Loop.Unregister(io, socketClosing: true);
        CircuitSockets.Close(socket, reset);
    }

    private void Finish(string reason, string? detail, bool stopping = false)
    {
        if (_phase == CircuitPhase.Closed)
        {
            return;
        }

        LeaveTable();
        var counters = _entry.Counters;
        var quietNull = Settings.NullCircuits == NullCircuits.Quiet && IsNull(reason, counters);
        // After the table removal, so a racing scrape undercounts (and catches up) rather
        // than counting the circuit's bytes twice.
        _route.Metrics?.OnCircuitClosed(reason, counters.BytesUp, counters.BytesDown, quietNull);
        // One line per circuit at Information, like HAProxy's per-connection log line;
        // the other lifecycle events are Debug so a busy relay is not bound by its log. A
        // quiet null circuit (a balancer's check, most often) is Debug too, as HAProxy's
        // dontlognull drops it: one line per check per balancer would drown the real ones.
        var level = quietNull ? LogLevel.DebugLevel : RelayEvents.CircuitClosed.Level;
        if (Context.System.EventStream.LogLevel <= level)
        {
            RelayEvents.CircuitClosed.LogAt(Log, level,
                _entry.Id, _entry.Route, ClientText, _entry.Upstream, reason,
                detail is null ? "" : $" ({detail})", counters.BytesUp, counters.BytesDown, Environment.TickCount64 - _startedMs);
        }

        if (!stopping)
        {
            ParkOrStop();
        }
    }

    /// <summary>
    /// A null circuit: the client ended it, with its FIN (then the close is complete) or a
    /// reset, before a byte was read from either side. An upstream that failed is never one:
    /// that is an error whoever connected.
    /// </summary>
    private static bool IsNull(string reason, CircuitCounters counters) =>
        (reason is CloseReasons.Complete or CloseReasons.ClientReset) && counters.ReadUp == 0 && counters.ReadDown == 0;

    protected override void PostStop()
    {
        // Stopped from outside (node shutdown): never leave a socket open.
        if (_phase != CircuitPhase.Closed)
        {
            ResetAndClose(CloseReasons.Shutdown, "the relay is stopping", stopping: true);
        }
    }

    protected override void PreRestart(Exception reason, object message)
    {
        // Never restarted (the listener stops failed circuits), but be explicit if it happens.
        if (_phase != CircuitPhase.Closed)
        {
            ResetAndClose(CloseReasons.InternalError, reason.GetType().Name, stopping: true);
        }
    }

    /// <summary>
    /// A handover's hold on the circuit: who asked, the open phase it froze from, and what was
    /// asked of it meanwhile (a thaw before the pumps stopped, an abort while frozen).
    /// </summary>
    private sealed class FreezeInProgress(IActorRef replyTo, CircuitPhase from)
    {
        public IActorRef ReplyTo { get; } = replyTo;

        public CircuitPhase From { get; set; } = from;

        public bool ThawWhenFrozen { get; set; }

        public string? AbortWhenThawed { get; set; }
    }

    private sealed record ConnectTimedOut(int Attempt) : INoSerializationVerificationNeeded, IDeadLetterSuppression;

    private sealed class IdleCheck : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly IdleCheck Instance = new();
    }

    private sealed record Resolved(IPAddress[] Addresses, Exception? Error, int Attempt) : INoSerializationVerificationNeeded;
}
