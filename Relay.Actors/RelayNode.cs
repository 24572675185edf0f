using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Diagnostics;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Relay.Actors.Circuits;
using Relay.Actors.Cluster;
using Relay.Actors.Configuration;
using Relay.Actors.Dispatch;
using Relay.Actors.Listening;
using Relay.Actors.Listening.Admission;
using Relay.Actors.Metrics;
using Relay.Actors.Reload;
using Relay.Actors.Upstreams;

namespace Relay.Actors;

/// <summary>
/// One running relay: the ActorSystem named <c>relay</c>, its per-core dispatchers, the
/// route listeners and the live circuit table. The host, the demo and the tests all start
/// relays through this one door.
/// </summary>
public sealed class RelayNode : IAsyncDisposable
{
    /// <summary>Akka settings the relay depends on; anything the caller passes wins.</summary>
    private static readonly Config BaseAkkaConfig = ConfigurationFactory.ParseString("""
        akka {
          # Completions racing a circuit's end are dead letters by design (they are marked
          # IDeadLetterSuppression); anything else is worth a few lines, not a flood.
          log-dead-letters = 10
          log-dead-letters-during-shutdown = off
          actor.guardian-supervisor-strategy = "Akka.Actor.DefaultSupervisorStrategy"
          coordinated-shutdown.run-by-clr-shutdown-hook = off
        }
        """);

    private RelayNode(ActorSystem system, IActorRef guardian, RelaySettings settings, RelayNodeContext context,
        ImmutableArray<ListenerProtocol.Bound> routes, ClusterNode? cluster)
    {
        Cluster = cluster;
        _routes = routes;
        System = system;
        Guardian = guardian;
        _settings = settings;
        Context = context;
    }

    private readonly ConcurrentDictionary<string, bool> _draining = new(StringComparer.Ordinal);
    private volatile RelaySettings _settings;
    private ImmutableArray<ListenerProtocol.Bound> _routes; // one array reference: swapped atomically
    private int _shuttingDown;

    public ActorSystem System { get; }

    public IActorRef Guardian { get; }

    /// <summary>The settings running now: those of the last successful reload, or of the start.</summary>
    public RelaySettings Settings => _settings;

    /// <summary>What the node's actors share (also found from <see cref="System"/>: <see cref="RelayNodeContext.For"/>).</summary>
    public RelayNodeContext Context { get; }

    public CircuitRegistry Circuits => Context.Registry;

    public CoreBalancer Cores => Context.Balancer;

    /// <summary>Per-route counters for <c>GET /metrics</c> and <c>GET /routes</c>.</summary>
    public RelayMetrics Metrics => Context.Metrics;

    public string NodeName => Context.Name;

    /// <summary>Each route's upstream pool with its members' health, for management and metrics.</summary>
    public UpstreamPools Pools => Context.Pools;

    /// <summary>The cluster part of the node; null when <c>relay.cluster.enabled = off</c>.</summary>
    public ClusterNode? Cluster { get; }

    /// <summary>
    /// The routes as bound, with the real ports when port 0 was configured. Empty on an
    /// active-standby node that does not own the service.
    /// </summary>
    public ImmutableArray<ListenerProtocol.Bound> Routes =>
        Cluster is { Settings.Mode: ClusterMode.ActiveStandby } cluster ? cluster.Service.Routes : _routes;

    /// <summary>
    /// Ready means every listener is bound and the node is neither shutting down nor stopped;
    /// a clustered node is also ready as a healthy standby (an Up member that does not own
    /// the service).
    /// </summary>
    public bool IsReady => !System.WhenTerminated.IsCompleted && !IsShuttingDown && (Cluster is null || Cluster.IsHealthyMember);

    /// <summary>The bound endpoint of the route called <paramref name="route"/>.</summary>
    public System.Net.IPEndPoint EndpointOf(string route) => Routes.Single(r => r.Route == route).Endpoint;

    /// <summary>
    /// Starts the ActorSystem and every route, and returns once all are listening.
    /// </summary>
    /// <param name="settings">Validated settings.</param>
    /// <param name="config">Extra Akka config (logging, remoting); it overrides the relay's own.</param>
    /// <param name="nodeName">How this node names itself in the circuit table; defaults to the host name.</param>
    /// <param name="setups">Extra actor-system setups (the host's logging pipeline, for one).</param>
    /// <exception cref="RelayStartException">A route could not listen; the message is one line.</exception>
    public static async Task<RelayNode> StartAsync(RelaySettings settings, Config? config = null, string? nodeName = null,
        IEnumerable<Setup>? setups = null)
    {
        // Composed by hand rather than with Akka.Hosting: its hosted service reports a failed
        // start as a whole exception on the console and a Critical log line, where the operator
        // gets the one line of a RelayStartException; it stops the system with its own
        // CLR-exit reason and sets exit code -1 for a downed node, where RunCommand drains within
        // the grace (a second signal cuts it short) and exits with the shutdown reason's code;
        // and tests run several nodes in one process, each from this one call, without a host apiece.
        var clustered = settings.Cluster.Enabled;
        var fullConfig = (config ?? Config.Empty)
            .WithFallback(clustered ? ClusterNode.AkkaDefaults : Config.Empty)
            .WithFallback(CoreDispatchers.CreateConfig(settings.Dispatchers))
            .WithFallback(BaseAkkaConfig);
        var bootstrap = BootstrapSetup.Create().WithConfig(fullConfig);
        var system = ActorSystem.Create("relay", ActorSystemSetup.Create([bootstrap, .. setups ?? []]));
        // A clustered node names itself by its Akka address: unique in the cluster, where
        // two appliances may share a host name (or a network namespace's host).
        var node = nodeName ?? (clustered ? Akka.Cluster.Cluster.Get(system).SelfAddress.ToString() : global::System.Net.Dns.GetHostName());
        var admission = NodeAdmission.For(system);
        admission.Apply(settings.Limits);
        var context = RelayNodeContext.Install(system, new RelayNodeContext(node, new CircuitRegistry(),
            new CoreBalancer(settings.Dispatchers.Cores), new RelayMetrics(settings.Routes.Select(r => r.Name)), new UpstreamPools(), admission)
            {
                EgressAddress = clustered ? settings.Cluster.EgressVip?.Address : null,
                ServiceAddress = clustered ? settings.Cluster.Vip?.Address : null,
            });
        // An active-standby node binds only when it owns the service (ServiceOwnerActor).
        var serveAtStart = !clustered || settings.Cluster.Mode == ClusterMode.ActiveActive;
        var guardian = system.ActorOf(RelayGuardian.Props(settings, serveAtStart), "relay");
        var cluster = clustered ? ClusterNode.Start(system, settings.Cluster, guardian, context) : null;
        if (!serveAtStart)
        {
            return new RelayNode(system, guardian, settings, context, ImmutableArray<ListenerProtocol.Bound>.Empty, cluster);
        }

        object answer;
        try
        {
            answer = await guardian.Ask(RelayGuardian.AwaitBound.Instance, TimeSpan.FromSeconds(30));
        }
        catch (Exception e)
        {
            await CoordinatedShutdown.Get(system).Run(RelayShutdownReason.StartFailed);
            throw new RelayStartException($"the relay did not start: {e.Message}");
        }

        if (answer is ListenerProtocol.BindFailed failed)
        {
            await CoordinatedShutdown.Get(system).Run(RelayShutdownReason.StartFailed);
            throw new RelayStartException(failed.Problem);
        }

        var bound = (RelayGuardian.RoutesBound)answer;
        return new RelayNode(system, guardian, settings, context, bound.Routes, cluster);
    }

    /// <summary>
    /// Stops <paramref name="route"/> accepting new connections while its open circuits run
    /// to their end (they are not timed out or reset by this). Completes once the listening
    /// socket is closed, so a connect after it is refused.
    /// </summary>
    public async Task<DrainOutcome> DrainAsync(string route)
    {
        ArgumentNullException.ThrowIfNull(route);
        var answer = await Guardian.Ask(new RelayGuardian.DrainRoute(route), TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        switch (answer)
        {
            case ListenerProtocol.Draining:
                _draining[route] = true;
                return DrainOutcome.Draining;
            case ListenerProtocol.AlreadyDraining:
                _draining[route] = true;
                return DrainOutcome.AlreadyDraining;
            case RelayGuardian.UnknownRoute:
                return DrainOutcome.UnknownRoute;
            default:
                throw new InvalidOperationException($"unexpected answer to a drain of {route}: {answer}");
        }
    }

    /// <summary>Whether <paramref name="route"/> has been drained (it no longer accepts).</summary>
    public bool IsDraining(string route) => _draining.ContainsKey(route);

    /// <summary>True once <see cref="ShutdownAsync"/> has begun: the node no longer accepts, and is not ready.</summary>
    public bool IsShuttingDown => Volatile.Read(ref _shuttingDown) != 0;

    /// <summary>
    /// Makes <paramref name="next"/>'s routes the running ones (see <see cref="RoutePlan"/>):
    /// new routes start, removed routes drain, changed routes apply to new circuits only, and
    /// no open circuit is cut. <c>relay.dispatchers</c> and <c>relay.management</c> are fixed
    /// at start: changes to them are reported in <see cref="ReloadOutcome.RestartNeeded"/> and
    /// not applied. On rejection the running routes stay as they were.
    /// </summary>
    public async Task<ReloadOutcome> ApplyAsync(RelaySettings next)
    {
        ArgumentNullException.ThrowIfNull(next);
        if (IsShuttingDown)
        {
            return ReloadOutcome.Rejected("the relay is shutting down");
        }

        var running = _settings;
        var restartNeeded = new List<string>();
        if (next.Dispatchers != running.Dispatchers)
        {
            restartNeeded.Add("relay.dispatchers");
        }

        if (next.Management != running.Management)
        {
            restartNeeded.Add("relay.management");
        }

        var answer = await Guardian.Ask(new RelayGuardian.ApplyRoutes(next.Routes), TimeSpan.FromSeconds(60)).ConfigureAwait(false);
        switch (answer)
        {
            case RelayGuardian.RoutesApplied applied:
                // Node-wide limits apply to new connections; open circuits stay counted.
                Listening.Admission.NodeAdmission.For(System).Apply(next.Limits);
                _routes = applied.Routes;
                Cluster?.Service.RoutesChanged(applied.Routes);
                _settings = next with { Dispatchers = running.Dispatchers, Management = running.Management };
                ForgetDrains(applied.Changes);
                return new ReloadOutcome(true, null, applied.Changes, restartNeeded);

            case RelayGuardian.RoutesRejected { Partial: true } partial:
                // Some routes did change: show what runs now.
                var now = await Guardian.Ask<RelayGuardian.RoutesBound>(RelayGuardian.AwaitBound.Instance, TimeSpan.FromSeconds(10))
                    .ConfigureAwait(false);
                _routes = now.Routes;
                Cluster?.Service.RoutesChanged(now.Routes);
                var names = now.Routes.Select(r => r.Route).ToHashSet(StringComparer.Ordinal);
                _settings = next with
                {
                    Routes = next.Routes.Where(r => names.Contains(r.Name)).ToList(),
                    Dispatchers = running.Dispatchers,
                    Management = running.Management,
                };
                return ReloadOutcome.Rejected(partial.Problem);

            case RelayGuardian.RoutesRejected rejected:
                return ReloadOutcome.Rejected(rejected.Problem);

            default:
                throw new InvalidOperationException($"unexpected answer to a reload: {answer}");
        }
    }

    private void ForgetDrains(RouteChanges changes)
    {
        foreach (var name in changes.Added.Concat(changes.Changed).Concat(changes.Removed))
        {
            _draining.TryRemove(name, out _);
        }
    }

    /// <summary>
    /// The graceful stop of SIGTERM: every listener closes at once (new connects are refused),
    /// open circuits run to their end for up to <paramref name="grace"/>, or until
    /// <paramref name="hurry"/> is cancelled (a second signal), and the rest are then reset with
    /// reason <c>shutdown</c>. The actor system is left running: dispose the node afterwards.
    /// </summary>
    public async Task<ShutdownSummary> ShutdownAsync(TimeSpan grace, CancellationToken hurry = default)
    {
        var clock = Stopwatch.StartNew();
        Interlocked.Exchange(ref _shuttingDown, 1);
        if (Cluster is { Settings.Handover.OnLeave: true, Service.IsOwner: true } cluster && Circuits.Count > 0)
        {
            // A rolling restart: the standby takes the circuits before this node lets them go.
            // A handover that cannot be done (no standby Up) leaves them to the grace below.
            await cluster.HandOverAsync(target: null, trigger: "shutdown", cluster.Settings.Handover.Timeout * 3).ConfigureAwait(false);
        }

        await Task.WhenAll(Routes.Select(r => DrainAsync(r.Route))).ConfigureAwait(false);
        var openAtClose = Circuits.Count;

        using var until = CancellationTokenSource.CreateLinkedTokenSource(hurry);
        until.CancelAfter(grace);
        while (Circuits.Count > 0 && !until.IsCancellationRequested)
        {
            await Task.Delay(50, CancellationToken.None).ConfigureAwait(false);
        }

        var remaining = Circuits.Snapshot();
        foreach (var entry in remaining)
        {
            entry.Supervisor.Tell(new CircuitCommands.Abort(CloseReasons.Shutdown, entry.Id));
        }

        // Each reset is one message on its core; bounded so a wedged circuit cannot hold the exit.
        var deadline = Stopwatch.StartNew();
        while (Circuits.Count > 0 && deadline.Elapsed < TimeSpan.FromSeconds(5))
        {
            await Task.Delay(20, CancellationToken.None).ConfigureAwait(false);
        }

        return new ShutdownSummary(openAtClose, Math.Max(0, openAtClose - remaining.Count), remaining.Count, clock.Elapsed,
            GraceRanOut: remaining.Count > 0 && !hurry.IsCancellationRequested);
    }

    public async ValueTask DisposeAsync()
    {
        await CoordinatedShutdown.Get(System).Run(CoordinatedShutdown.ClrExitReason.Instance);
        await System.WhenTerminated;
    }
}

/// <summary>What <see cref="RelayNode.DrainAsync"/> did.</summary>
public enum DrainOutcome
{
    /// <summary>The route has stopped accepting.</summary>
    Draining,

    /// <summary>The route had already been drained; nothing changed.</summary>
    AlreadyDraining,

    /// <summary>No route of that name on this node.</summary>
    UnknownRoute,
}

/// <summary>The relay could not start; the message is one line for an operator.</summary>
public sealed class RelayStartException(string message) : Exception(message);

/// <summary>
/// Why the relay's actor system was shut down, when the process exits with an error. Akka
/// logs the reason's type and its exit code as the system's last line ("CoordinatedShutdown
/// invoked due to [Reason:Relay.Actors.RelayShutdownReason]. Exiting with [ExitCode:1]."), so
/// the code must be the one the process exits with; the line before it (ListenerBindFailed,
/// RelayStartFailed) says what went wrong.
/// </summary>
public sealed class RelayShutdownReason : CoordinatedShutdown.Reason
{
    /// <summary>A route or the management endpoint could not be bound: exit code 1.</summary>
    public static readonly RelayShutdownReason StartFailed = new("the relay did not start", 1);

    /// <summary>An unexpected error ended the relay: exit code 1.</summary>
    public static readonly RelayShutdownReason Failed = new("an unexpected error", 1);

    private readonly string _description;

    private RelayShutdownReason(string description, int exitCode)
    {
        _description = description;
        ExitCode = exitCode;
    }

    public override int ExitCode { get; }

    public override string ToString() => _description;
}
