using System.Collections.Immutable;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Event;
using Relay.Actors.Configuration;
using Relay.Actors.Listening;

namespace Relay.Actors;

/// <summary>
/// Reload: apply a new route set to the running node without cutting any open circuit.
/// Every address that needs a new socket is bound first, synchronously, so a reload that
/// cannot listen is rejected before any running route is touched. Then released routes retire
/// (stop accepting, end when their circuits have), sockets on unchanged addresses are handed
/// to the new listeners, and the reply lists what changed.
/// </summary>
public sealed partial class RelayGuardian
{
    private PendingReload? _reload;

    /// <summary>
    /// Ask: make <paramref name="Routes"/> the running route set. Replies <see cref="RoutesApplied"/>
    /// or <see cref="RoutesRejected"/>. A route equal to its running self is not touched.
    /// </summary>
    public sealed record ApplyRoutes(IReadOnlyList<RouteSettings> Routes) : INoSerializationVerificationNeeded;

    /// <summary>The new route set is running; <paramref name="Routes"/> are all routes as bound now.</summary>
    public sealed record RoutesApplied(RouteChanges Changes, ImmutableArray<ListenerProtocol.Bound> Routes) : INoSerializationVerificationNeeded;

    /// <summary>The reload was not applied (or, when <paramref name="Partial"/>, only in part); <paramref name="Problem"/> is one line.</summary>
    public sealed record RoutesRejected(string Problem, bool Partial = false) : INoSerializationVerificationNeeded;

    private sealed record HandOversDone(ListenerProtocol.HandedOver[] Sockets) : INoSerializationVerificationNeeded;

    private sealed class PendingReload(IActorRef replyTo, RoutePlan plan, IReadOnlyList<RouteSettings> routes)
    {
        public IActorRef ReplyTo { get; } = replyTo;

        public RoutePlan Plan { get; } = plan;

        public IReadOnlyList<RouteSettings> Routes { get; } = routes;

        public bool HandOversPending { get; set; }

        public List<string> Problems { get; } = new();
    }

    private bool OnReloadMessage(object message)
    {
        switch (message)
        {
            case ApplyRoutes apply:
                Apply(apply);
                return true;

            case HandOversDone done:
                OnHandOvers(done);
                return true;

            default:
                return false;
        }
    }

    private void Apply(ApplyRoutes apply)
    {
        if (_reload is not null)
        {
            Sender.Tell(new RoutesRejected("another reload is still being applied"));
            return;
        }

        if (!_serving)
        {
            // A standby binds nothing: the new set is what it will bind when it takes over.
            var planned = RoutePlan.Create(_desired, apply.Routes);
            _desired = apply.Routes;
            _order = apply.Routes.Select(r => r.Name).ToList();
            Sender.Tell(new RoutesApplied(planned.Changes, []));
            return;
        }

        var plan = RoutePlan.Create(_order.Select(n => _live[n].Settings).ToList(), apply.Routes);

        // 1. Bind every new address. One failure rejects the reload with nothing changed.
        var fresh = new List<(RouteSettings Route, Socket Socket)>();
        foreach (var route in plan.ToBind)
        {
            if (!ListenSocket.TryOpen(route, out var socket, out var problem))
            {
                fresh.ForEach(f => f.Socket.Dispose());
                Sender.Tell(new RoutesRejected(problem));
                return;
            }

            fresh.Add((route, socket!));
        }

        _reload = new PendingReload(Sender, plan, apply.Routes);
        _order = apply.Routes.Select(r => r.Name).ToList();

        // 2. Retire what is released; ask for the sockets that move to a new listener.
        var handOvers = new List<Task<ListenerProtocol.HandedOver>>();
        foreach (var old in plan.Released)
        {
            var live = _live[old.Name];
            _live.Remove(old.Name);
            _pools.Remove(old.Name);
            if (live.Checker is not null)
            {
                Context.Stop(live.Checker);
            }

            if (plan.HandOvers.ContainsKey(old.Name))
            {
                var name = old.Name;
                handOvers.Add(live.Listener.Ask<ListenerProtocol.HandedOver>(new ListenerProtocol.Retire(HandOver: true), TimeSpan.FromSeconds(30))
                    .ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : new ListenerProtocol.HandedOver(name, null), TaskScheduler.Default));
            }
            else
            {
                live.Listener.Tell(new ListenerProtocol.Retire(HandOver: false));
            }
        }

        // 3. Start the listeners with fresh sockets now, those with handed-over sockets when they arrive.
        foreach (var (route, socket) in fresh)
        {
            StartRoute(route, socket);
        }

        if (handOvers.Count > 0)
        {
            _reload.HandOversPending = true;
            Task.WhenAll(handOvers).PipeTo(Self, success: sockets => new HandOversDone(sockets));
        }

        OnReloadProgress();
    }

    private void OnHandOvers(HandOversDone done)
    {
        if (_reload is null)
        {
            done.Sockets.ToList().ForEach(h => h.Socket?.Dispose());
            return;
        }

        foreach (var handed in done.Sockets)
        {
            var route = _reload.Plan.HandOvers[handed.Route];
            var socket = handed.Socket;
            if (socket is null && !ListenSocket.TryOpen(route, out socket, out var problem))
            {
                // The old listener had been drained (its socket closed) and the address is taken now.
                _log.Error("{EventName:l} {Problem:l}", "ListenerBindFailed", problem);
                _reload.Problems.Add(problem);
                continue;
            }

            StartRoute(route, socket);
        }

        _reload.HandOversPending = false;
        OnReloadProgress();
    }

    private void OnReloadBindFailed(ListenerProtocol.BindFailed failed)
    {
        _reload!.Problems.Add(failed.Problem);
        _live.Remove(failed.Route);
        _pools.Remove(failed.Route);
        OnReloadProgress();
    }

    /// <summary>Replies once every route of the new set is listening or has failed to.</summary>
    private void OnReloadProgress()
    {
        if (_reload is not { HandOversPending: false } reload)
        {
            return;
        }

        var waiting = reload.Routes.Any(r => _live.TryGetValue(r.Name, out var live) && live.Bound is null);
        if (waiting)
        {
            return;
        }

        _reload = null;
        _order = _order.Where(_live.ContainsKey).ToList();
        _desired = reload.Routes.Where(r => _live.ContainsKey(r.Name)).ToList();
        reload.ReplyTo.Tell(reload.Problems.Count == 0
            ? new RoutesApplied(reload.Plan.Changes, BoundRoutes())
            : new RoutesRejected($"{string.Join("; ", reload.Problems)} (the other changes were applied: {reload.Plan.Changes})", Partial: true));
    }
}
