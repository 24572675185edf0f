using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Relay.Actors.Internal;
using Relay.Actors.Logging;

namespace Relay.Actors.Cluster;

/// <summary>
/// The relay's downing provider (<c>akka.cluster.downing-provider-class</c>, set in
/// hocon/cluster-akka.conf). Akka's split-brain strategies cannot fail a pair of appliances
/// over: with two nodes, keep-oldest makes the survivor down itself when the oldest crashes,
/// keep-majority does the same whenever the crashed node has the lower address, and
/// static-quorum 1 downs everything. This provider keeps the side that can still see itself:
/// <list type="bullet">
/// <item>two members: the survivor downs its unreachable peer, as a VRRP backup takes over
/// from a silent master. A real partition leaves both sides active, as it would two VRRP
/// masters; give a pair two heartbeat paths or a third node.</item>
/// <item>three or more: keep-majority (an even split keeps the side with the lowest address),
/// the minority downs itself.</item>
/// </list>
/// It acts only once membership and reachability have been unchanged for
/// <c>akka.cluster.split-brain-resolver.stable-after</c>, so a blip is not a crash.
/// </summary>
public sealed class ReachableSideDowningProvider : IDowningProvider
{
    private readonly ActorSystem _system;

    public ReachableSideDowningProvider(ActorSystem system)
    {
        _system = system;
    }

    // Akka 1.5 passes the cluster too; it is not needed before the actor starts.
    public ReachableSideDowningProvider(ActorSystem system, Akka.Cluster.Cluster cluster)
        : this(system)
    {
    }

    /// <summary>
    /// Zero: a singleton (the service owner) starts on the survivor as soon as the failed
    /// node is removed. The margin exists for a partitioned node to stop its singleton
    /// first; a crashed node has nothing left to stop, and a partitioned pair keeps both
    /// sides anyway (see the class summary).
    /// </summary>
    public TimeSpan DownRemovalMargin => TimeSpan.Zero;

    public Props DowningActorProps
    {
        get
        {
            var stableAfter = _system.Settings.Config.GetTimeSpan("akka.cluster.split-brain-resolver.stable-after", TimeSpan.FromSeconds(1));
            return PropsFactory.Of(() => new ReachableSideDowning(stableAfter));
        }
    }
}

/// <summary>INTERNAL API. The decision actor of <see cref="ReachableSideDowningProvider"/>.</summary>
internal sealed class ReachableSideDowning : UntypedActor, IWithTimers
{
    private readonly TimeSpan _stableAfter;
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly HashSet<UniqueAddress> _downed = new();
    // Members whose downing is being held back (a handover), logged once per stretch.
    private readonly HashSet<UniqueAddress> _deferred = new();
    private readonly DowningHolds _holds = DowningHolds.Get(Context.System);
    private long _lastChangeMs = Environment.TickCount64;

    public ReachableSideDowning(TimeSpan stableAfter) => _stableAfter = stableAfter;

    public ITimerScheduler Timers { get; set; } = null!;

    private sealed class Tick
    {
        public static readonly Tick Instance = new();
    }

    protected override void PreStart()
    {
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));
        var every = TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(25).Ticks, _stableAfter.Ticks / 4));
        Timers.StartPeriodicTimer("decide", Tick.Instance, every);
    }

    protected override void PostStop() => _cluster.Unsubscribe(Self);

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case Tick:
                if (Environment.TickCount64 - _lastChangeMs >= (long)_stableAfter.TotalMilliseconds)
                {
                    Decide();
                }

                break;

            case ClusterEvent.CurrentClusterState:
            case ClusterEvent.IMemberEvent:
            case ClusterEvent.IReachabilityEvent:
                _lastChangeMs = Environment.TickCount64;
                break;

            default:
                Unhandled(message);
                break;
        }
    }

    private void Decide()
    {
        var state = _cluster.State;
        var self = _cluster.SelfMember;
        if (self.Status != MemberStatus.Up && self.Status != MemberStatus.Leaving)
        {
            return;
        }

        var members = state.Members
            .Where(m => m.Status == MemberStatus.Up || m.Status == MemberStatus.Leaving || m.Status == MemberStatus.WeaklyUp)
            .ToList();
        var unreachable = state.Unreachable.Where(m => members.Any(x => x.UniqueAddress.Equals(m.UniqueAddress))).ToList();
        if (unreachable.Count == 0 || unreachable.Any(m => m.UniqueAddress.Equals(self.UniqueAddress)))
        {
            return;
        }

        var reachable = members.Count - unreachable.Count;
        // Akka orders members by host, then port; the same rule keeps-majority uses for an even split.
        var lowest = members.OrderBy(m => m.Address.Host, StringComparer.Ordinal).ThenBy(m => m.Address.Port).First();
        var keepThisSide = members.Count <= 2
            || reachable * 2 > members.Count
            || (reachable * 2 == members.Count && !unreachable.Any(m => m.UniqueAddress.Equals(lowest.UniqueAddress)));

        if (!keepThisSide)
        {
            if (Deferred(self))
            {
                return;
            }

            RelayEvents.MemberDowningItself.Log(_log, self.Address.ToString(), reachable, members.Count);
            _cluster.Down(self.Address);
            return;
        }

        foreach (var member in unreachable)
        {
            if (!_downed.Contains(member.UniqueAddress) && Deferred(member))
            {
                continue;
            }

            if (_downed.Add(member.UniqueAddress))
            {
                RelayEvents.MemberDowningUnreachable.Log(_log, member.Address.ToString(), reachable, members.Count, _stableAfter.ToString());
                _cluster.Down(member.Address);
            }
        }
    }

    /// <summary>
    /// Whether <paramref name="member"/>'s downing waits: a live handover names it
    /// (<see cref="DowningHolds"/>). Said once per stretch; decided again at every tick, so
    /// the downing follows as soon as the handover ends if the member is still unreachable.
    /// </summary>
    private bool Deferred(Member member)
    {
        var why = _holds.WhyHeld(member.Address);
        if (why is null)
        {
            _deferred.Remove(member.UniqueAddress);
            return false;
        }

        if (_deferred.Add(member.UniqueAddress))
        {
            RelayEvents.MemberDowningDeferred.Log(_log, member.Address.ToString(), why);
        }

        return true;
    }
}
