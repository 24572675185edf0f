using System.Net.Sockets;
using Akka.Actor;
using Akka.Event;
using Relay.Actors.Configuration;
using Relay.Actors.Listening;
using Relay.Actors.Sockets;
using Relay.Actors.Logging;

namespace Relay.Actors.Reload;

/// <summary>
/// INTERNAL API. Applies a new route set (<see cref="RelayGuardian.ApplyRoutes"/>) to the
/// running node without cutting any open circuit, following a <see cref="RoutePlan"/>. Every
/// address that needs a new socket is bound first, synchronously, so a reload that cannot
/// listen is rejected before any running route is touched. Then released routes retire (stop
/// accepting, end when their circuits have), sockets on unchanged addresses are handed to the
/// new listeners, and the reply lists what changed once every new route listens or has failed to.
/// <para>
/// Its own state is the one reload in progress. It is a plain class the guardian owns and
/// calls from its own message handling, not a child actor: it changes the guardian's
/// <see cref="RunningRoutes"/> in the same step as it decides, so no other message (a bind,
/// a drain, an AwaitBound) can see a route set half replaced.
/// </para>
/// </summary>
internal sealed class ReloadCoordinator(RunningRoutes routes, IActorRef guardian, ILoggingAdapter log)
{
    private PendingReload? _pending;

    /// <summary>True from an accepted <see cref="Apply"/> until its reply is sent.</summary>
    public bool InProgress => _pending is not null;

    /// <summary>
    /// Makes <paramref name="next"/> the route set. On a node that does not serve nothing is
    /// bound: the new set is what it will bind when it takes over.
    /// </summary>
    public void Apply(IReadOnlyList<RouteSettings> next, bool serving, IActorRef replyTo)
    {
        if (_pending is not null)
        {
            replyTo.Tell(new RelayGuardian.RoutesRejected("another reload is still being applied"));
            return;
        }

        if (!serving)
        {
            var planned = RoutePlan.Create(routes.Desired, next);
            routes.Replace(next);
            replyTo.Tell(new RelayGuardian.RoutesApplied(planned.Changes, []));
            return;
        }

        var plan = RoutePlan.Create(routes.Running, next);

        // 1. Bind every new address. One failure rejects the reload with nothing changed.
        var fresh = new List<(RouteSettings Route, Socket Socket)>();
        foreach (var route in plan.ToBind)
        {
            if (!ListenSocket.TryOpen(route, out var socket, out var problem))
            {
                fresh.ForEach(f => f.Socket.Dispose());
                replyTo.Tell(new RelayGuardian.RoutesRejected(problem));
                return;
            }

            fresh.Add((route, socket!));
        }

        _pending = new PendingReload(replyTo, plan, next);
        routes.Expect(next);

        // 2. Retire what is released; ask for the sockets that move to a new listener.
        var handOvers = new List<Task<ListenerProtocol.HandedOver>>();
        foreach (var old in plan.Released)
        {
            var listener = routes.Release(old.Name);
            if (plan.HandOvers.ContainsKey(old.Name))
            {
                var name = old.Name;
                handOvers.Add(listener.Ask<ListenerProtocol.HandedOver>(new ListenerProtocol.Retire(HandOver: true), TimeSpan.FromSeconds(30))
                    .ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : new ListenerProtocol.HandedOver(name, null), TaskScheduler.Default));
            }
            else
            {
                listener.Tell(new ListenerProtocol.Retire(HandOver: false));
            }
        }

        // 3. Start the listeners with fresh sockets now, those with handed-over sockets when they arrive.
        foreach (var (route, socket) in fresh)
        {
            routes.Start(route, socket);
        }

        if (handOvers.Count > 0)
        {
            _pending.HandOversPending = true;
            Task.WhenAll(handOvers).PipeTo(guardian, success: sockets => new HandOversDone(sockets));
        }

        OnProgress();
    }

    /// <summary>The retired listeners have given up their sockets (null where one had closed it): the new listeners start on them.</summary>
    public void OnHandOvers(HandOversDone done)
    {
        if (_pending is null)
        {
            done.Sockets.ToList().ForEach(h => h.Socket?.Dispose());
            return;
        }

        foreach (var handed in done.Sockets)
        {
            var route = _pending.Plan.HandOvers[handed.Route];
            var socket = handed.Socket;
            if (socket is null && !ListenSocket.TryOpen(route, out socket, out var problem))
            {
                // The old listener had been drained (its socket closed) and the address is taken now.
                RelayEvents.ListenerBindFailed.Log(log, problem);
                _pending.Problems.Add(problem);
                continue;
            }

            routes.Start(route, socket);
        }

        _pending.HandOversPending = false;
        OnProgress();
    }

    /// <summary>A new listener of the reload in progress could not bind: the reload will be answered as partial.</summary>
    public void OnBindFailed(ListenerProtocol.BindFailed failed)
    {
        _pending!.Problems.Add(failed.Problem);
        routes.Forget(failed.Route);
        OnProgress();
    }

    /// <summary>Replies once every route of the new set is listening or has failed to.</summary>
    public void OnProgress()
    {
        if (_pending is not { HandOversPending: false } reload)
        {
            return;
        }

        if (reload.Routes.Any(r => routes.IsBinding(r.Name)))
        {
            return;
        }

        _pending = null;
        routes.Settle(reload.Routes);
        reload.ReplyTo.Tell(reload.Problems.Count == 0
            ? new RelayGuardian.RoutesApplied(reload.Plan.Changes, routes.Bound())
            : new RelayGuardian.RoutesRejected($"{string.Join("; ", reload.Problems)} (the other changes were applied: {reload.Plan.Changes})", Partial: true));
    }

    /// <summary>To the guardian: the sockets asked of retiring listeners, for <see cref="OnHandOvers"/>.</summary>
    internal sealed record HandOversDone(ListenerProtocol.HandedOver[] Sockets) : INoSerializationVerificationNeeded;

    private sealed class PendingReload(IActorRef replyTo, RoutePlan plan, IReadOnlyList<RouteSettings> routes)
    {
        public IActorRef ReplyTo { get; } = replyTo;

        public RoutePlan Plan { get; } = plan;

        public IReadOnlyList<RouteSettings> Routes { get; } = routes;

        public bool HandOversPending { get; set; }

        public List<string> Problems { get; } = new();
    }
}
