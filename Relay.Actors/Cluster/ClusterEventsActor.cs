using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Relay.Actors.Internal;
using Relay.Actors.Logging;

namespace Relay.Actors.Cluster;

/// <summary>
/// <c>/user/cluster-events</c>: one log line per membership change, under the stable names
/// of docs/OPERATIONS.md (<c>MemberUp</c>, <c>MemberUnreachable</c>, <c>MemberReachable</c>,
/// <c>MemberLeaving</c>, <c>MemberDowned</c>, <c>MemberRemoved</c>).
/// </summary>
public sealed class ClusterEventsActor : UntypedActor
{
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly ILoggingAdapter _log = Context.GetLogger();

    public static Props Props() => PropsFactory.Of(() => new ClusterEventsActor());

    protected override void PreStart() =>
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));

    protected override void PostStop() => _cluster.Unsubscribe(Self);

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case ClusterEvent.MemberUp up:
                RelayEvents.MemberUp.Log(_log, up.Member.Address.ToString(), _cluster.State.Members.Count);
                break;
            case ClusterEvent.UnreachableMember unreachable:
                RelayEvents.MemberUnreachable.Log(_log, unreachable.Member.Address.ToString());
                break;
            case ClusterEvent.ReachableMember reachable:
                RelayEvents.MemberReachable.Log(_log, reachable.Member.Address.ToString());
                break;
            case ClusterEvent.MemberLeft left:
                RelayEvents.MemberLeaving.Log(_log, left.Member.Address.ToString());
                break;
            case ClusterEvent.MemberDowned downed:
                RelayEvents.MemberDowned.Log(_log, downed.Member.Address.ToString());
                break;
            case ClusterEvent.MemberRemoved removed:
                RelayEvents.MemberRemoved.Log(_log, removed.Member.Address.ToString(), removed.PreviousStatus.ToString());
                break;
            case ClusterEvent.IMemberEvent:
            case ClusterEvent.IReachabilityEvent:
                break;
            default:
                Unhandled(message);
                break;
        }
    }
}
