using System.Collections.Immutable;
using System.Diagnostics;
using Akka.Actor;
using Relay.Actors.Circuits;
using Relay.Actors.Configuration;
using Relay.Actors.Listening;
using Relay.Actors.Reload;

namespace Relay.Actors;

/// <summary>Reload and graceful shutdown of a running node.</summary>
public sealed partial class RelayNode
{
    private volatile RelaySettings _settings;
    private ImmutableArray<ListenerProtocol.Bound> _routes; // one array reference: swapped atomically
    private int _shuttingDown;

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
            entry.Supervisor.Tell(new CircuitCommands.Abort(CloseReasons.Shutdown));
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
}

/// <summary>What <see cref="RelayNode.ApplyAsync"/> did.</summary>
/// <param name="Applied">True when the new routes run; false when rejected (the running config stays).</param>
/// <param name="Problem">Why it was rejected: one line.</param>
/// <param name="Changes">The routes added, removed, changed and rebound (null when rejected).</param>
/// <param name="RestartNeeded">Sections that changed but only take effect on a restart.</param>
public sealed record ReloadOutcome(bool Applied, string? Problem, RouteChanges? Changes, IReadOnlyList<string> RestartNeeded)
{
    public static ReloadOutcome Rejected(string problem) => new(false, problem, null, []);
}

/// <summary>What <see cref="RelayNode.ShutdownAsync"/> did.</summary>
/// <param name="OpenAtClose">Circuits open when the listeners closed.</param>
/// <param name="Finished">Of those, the ones that ended on their own within the grace.</param>
/// <param name="Reset">The ones reset with reason <c>shutdown</c>.</param>
/// <param name="GraceRanOut">True when the grace ran out (rather than a second signal cutting it short).</param>
public sealed record ShutdownSummary(int OpenAtClose, int Finished, int Reset, TimeSpan Duration, bool GraceRanOut);
