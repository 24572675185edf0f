using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using Relay.Actors.Configuration;
using Relay.Actors.Internal;
using Relay.Actors.Listening;
using Relay.Actors.Logging;
using ClusterSettings = Relay.Actors.Configuration.ClusterSettings;

namespace Relay.Actors.Cluster;

/// <summary>
/// The cluster singleton <c>/user/service-owner/owner</c>: it runs on exactly one node, the
/// oldest member, and while it runs that node owns the service. Taking over: add the
/// floating addresses (the VIP, on which routes may listen, and the egress VIP, from which
/// upstream connections come), bind the routes (<see cref="RelayGuardian.StartServing"/>),
/// then announce the addresses (a gratuitous ARP, or an unsolicited neighbour advertisement
/// for IPv6), so clients are sent here only once a listener is there; the announcements go
/// out <see cref="Announcements"/> times, a second apart, for a neighbour that missed one.
/// Handing over (<see cref="Release"/>, sent by the singleton manager when this node
/// leaves): stop accepting, then remove the addresses, then stop, after which the manager
/// starts the singleton on the next oldest node. The addresses always move together: one
/// <see cref="VipController"/> holds them all.
/// </summary>
/// <remarks>
/// A singleton rather than each node applying an oldest-member rule itself: the manager
/// already orders a graceful hand-over (the new owner starts only after the old one has
/// stopped) and waits for a failed owner to be downed and removed before starting a new
/// one, which is the safety an appliance pair needs from the downing provider.
/// </remarks>
public sealed class ServiceOwnerActor : ReceiveActor, IWithTimers
{
    private static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How many announcements a take-over sends, the first at once: a neighbour that missed
    /// one (a lost frame, a switch port still coming up) gets another within a second.
    /// </summary>
    internal const int Announcements = 3;

    private static readonly TimeSpan AnnounceInterval = TimeSpan.FromSeconds(1);

    private readonly ClusterSettings _settings;
    private readonly IActorRef _guardian;
    private readonly ServiceState _state;
    private readonly VipController? _vip;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Stopwatch _since = Stopwatch.StartNew();
    private long _vipMs;
    private bool _vipHeld;
    private bool _serving;
    private int _announced;
    private string?[] _announceProblems = [];
    private Address? _delegate;

    public ServiceOwnerActor(ClusterSettings settings, IActorRef guardian, ServiceState state, VipController? vip)
    {
        _settings = settings;
        _guardian = guardian;
        _state = state;
        _vip = vip;
        Acquiring();
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(ClusterSettings settings, IActorRef guardian, ServiceState state, VipController? vip) =>
        PropsFactory.Of(() => new ServiceOwnerActor(settings, guardian, state, vip));

    /// <summary>The singleton manager's termination message: hand the service over.</summary>
    public sealed class Release
    {
        public static readonly Release Instance = new();

        private Release()
        {
        }
    }

    /// <summary>
    /// A handover moved the service (its circuits, routes and addresses): to another member
    /// (<paramref name="Holder"/> is that member), or back to this node (<paramref name="Holder"/>
    /// is null). The singleton stays where it is, the authority on who holds the service: it
    /// takes the service back itself if the holder leaves the cluster while holding it.
    /// </summary>
    public sealed record ServiceMoved(Address? Holder);

    /// <summary>
    /// Published on this node's event stream when it takes the service over as the singleton:
    /// at start, or because the member that held the service is gone. A handover back to this
    /// node does not publish it (the handover coordinator adopts the service itself).
    /// </summary>
    public sealed class ServiceAcquired
    {
        public static readonly ServiceAcquired Instance = new();

        private ServiceAcquired()
        {
        }
    }

    private sealed class Acquire
    {
        public static readonly Acquire Instance = new();
    }

    private sealed class AnnounceAgain
    {
        public static readonly AnnounceAgain Instance = new();
    }

    protected override void PreStart() => Self.Tell(Acquire.Instance);

    private void Acquiring()
    {
        Receive<Acquire>(_ =>
        {
            // Held from the first attempt on: an address added before another one failed must
            // go when the node lets go, and removing an address that is not there is no error.
            _vipHeld = _vip is not null;
            // One netlink request per address: done on this thread, each costs tens of microseconds.
            foreach (var address in _vip?.Addresses ?? [])
            {
                if (_vip!.Add(address) is { Ok: false } failed)
                {
                    RelayEvents.VipAddFailed.Log(_log, address.Address.ToString(), address.Device, failed.Problem, RetryAfter.ToString());
                    Timers.StartSingleTimer("retry", Acquire.Instance, RetryAfter);
                    return;
                }
            }

            _vipMs = _since.ElapsedMilliseconds;
            _guardian.Ask(RelayGuardian.StartServing.Instance, TimeSpan.FromSeconds(30)).PipeTo(Self);
        });

        Receive<RelayGuardian.RoutesBound>(bound =>
        {
            _serving = true;
            _announced = 0;
            _announceProblems = new string?[_vip?.Addresses.Count ?? 0];
            // Before the announcement draws the peers here: the handover coordinator lifts the
            // guard it may still hold for circuits it handed to the member now gone.
            Context.System.EventStream.Publish(ServiceAcquired.Instance);
            Announce();
            _state.TookOver(bound.Routes);
            RelayEvents.ServiceTakenOver.Log(_log, bound.Routes.Length, _vip is null ? "" : ", " + string.Join(", ", _vip.Addresses), _since.ElapsedMilliseconds, _vipMs);
            Become(Owning);
        });

        Receive<ListenerProtocol.BindFailed>(failed =>
        {
            RelayEvents.ServiceTakeOverFailed.Log(_log, failed.Problem, RetryAfter.ToString());
            // The listeners that did bind keep serving; the guardian binds the rest on the retry.
            _guardian.Tell(RelayGuardian.StopServing.Instance);
            Timers.StartSingleTimer("retry", Acquire.Instance, RetryAfter);
        });

        Receive<Status.Failure>(failure =>
        {
            RelayEvents.ServiceTakeOverFailed.Log(_log, failure.Cause.Message, RetryAfter.ToString());
            Timers.StartSingleTimer("retry", Acquire.Instance, RetryAfter);
        });

        Receive<RelayGuardian.ServingStopped>(_ => { });
        Receive<Release>(_ => StartRelease());
    }

    private void Owning()
    {
        Receive<AnnounceAgain>(_ => Announce());
        Receive<Release>(_ => StartRelease());
        Receive<RelayGuardian.ServingStopped>(_ => { });
        Receive<ServiceMoved>(moved => OnServiceMoved(moved));
    }

    private void OnServiceMoved(ServiceMoved moved)
    {
        Timers.Cancel("announce");
        if (moved.Holder is null)
        {
            // Handed back here: the coordinator bound the routes and added the addresses.
            _serving = true;
            _vipHeld = _vip is not null;
            Become(Owning);
            return;
        }

        _serving = false;
        _vipHeld = false;
        _delegate = moved.Holder;
        Akka.Cluster.Cluster.Get(Context.System).Subscribe(Self, Akka.Cluster.ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(Akka.Cluster.ClusterEvent.MemberRemoved));
        Become(Delegated);
    }

    /// <summary>
    /// Another member holds the service after a handover. If it leaves the cluster (removed:
    /// downed after a crash, or gone after leaving without handing back), this node takes the
    /// service again, as a new singleton would.
    /// </summary>
    private void Delegated()
    {
        Receive<ServiceMoved>(moved => OnServiceMoved(moved));
        Receive<Akka.Cluster.ClusterEvent.MemberRemoved>(removed =>
        {
            if (removed.Member.Address.Equals(_delegate))
            {
                Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
                _delegate = null;
                Become(Acquiring);
                Self.Tell(Acquire.Instance);
            }
        });
        Receive<Release>(_ => StartRelease());
        Receive<RelayGuardian.ServingStopped>(_ => { });
    }

    private void StartRelease()
    {
        Timers.CancelAll();
        _since.Restart();
        Become(Releasing);
        // Active-active nodes keep serving as peers; only active-standby gives the routes up.
        if (_serving && _settings.Mode == ClusterMode.ActiveStandby)
        {
            _guardian.Ask(RelayGuardian.StopServing.Instance, TimeSpan.FromSeconds(10)).PipeTo(Self);
        }
        else
        {
            Self.Tell(RelayGuardian.ServingStopped.Instance);
        }
    }

    /// <summary>
    /// One announcement of each address, and the next one scheduled until
    /// <see cref="Announcements"/> are out. A failure is logged once per take-over and address
    /// unless its reason changes: a repeat fails for the same reason as the first.
    /// </summary>
    private void Announce()
    {
        if (_vip is null)
        {
            return;
        }

        for (var i = 0; i < _vip.Addresses.Count; i++)
        {
            var address = _vip.Addresses[i];
            var result = _vip.Announce(address);
            if (!result.Ok && result.Problem != _announceProblems[i])
            {
                _announceProblems[i] = result.Problem;
                RelayEvents.VipAnnounceFailed.Log(_log, address.Address.ToString(), address.Device, result.Problem);
            }
        }

        if (++_announced < Announcements)
        {
            Timers.StartSingleTimer("announce", AnnounceAgain.Instance, AnnounceInterval);
        }
    }

    private void Releasing()
    {
        Receive<RelayGuardian.ServingStopped>(_ => RemoveVip());
        Receive<Status.Failure>(_ => RemoveVip());
        ReceiveAny(_ => { });
    }

    private void RemoveVip()
    {
        _serving = false;
        if (_vipHeld && _vip?.Remove() is { Ok: false } failed)
        {
            RelayEvents.VipRemoveFailed.Log(_log, failed.Problem);
        }

        _vipHeld = false;
        Finish();
    }

    private void Finish()
    {
        _state.Released();
        RelayEvents.ServiceReleased.Log(_log, _since.ElapsedMilliseconds);
        Context.Stop(Self);
    }

    protected override void PostStop()
    {
        // Stopped without a hand-over (the node is shutting down or was downed): leave no VIP
        // behind to answer ARP for an address another node is about to hold.
        if (_vipHeld && _vip is not null)
        {
            var result = _vip.Remove();
            if (!result.Ok)
            {
                RelayEvents.VipRemoveFailed.Log(_log, result.Problem);
            }

            RelayEvents.ServiceReleasedOnStop.Log(_log, result.Ok);
        }

        _state.Released();
    }
}
