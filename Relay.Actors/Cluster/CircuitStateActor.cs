using System.Collections.Immutable;
using System.Globalization;
using Akka.Actor;
using Akka.Cluster;
using Akka.DistributedData;
using Akka.Event;
using Relay.Actors.Circuits;
using Relay.Actors.Configuration;
using Relay.Actors.Internal;
using Relay.Actors.Logging;
using ClusterSettings = Relay.Actors.Configuration.ClusterSettings;

namespace Relay.Actors.Cluster;

/// <summary>
/// <c>/user/cluster-state</c>: replicates circuit tables between the nodes with
/// DistributedData. Each node writes its own table, split into
/// <see cref="ClusterSettings.StateShards"/> last-writer-wins registers (a single writer per
/// key, so the clock never decides between two writers), once per
/// <see cref="ClusterSettings.PublishInterval"/> and only the shards that changed: never
/// per byte. It subscribes to the keys of every other member and mirrors them into the
/// <see cref="ClusterCircuitTable"/>. When a member is removed (it failed and was downed,
/// or it left), its last known open circuits become <c>lost</c>, each logged as
/// <c>CircuitLost</c>, and stay listed for <see cref="ClusterSettings.LostRetention"/>.
/// </summary>
public sealed class CircuitStateActor : UntypedActor, IWithTimers
{
    private const string KeyPrefix = "relay-circuits";

    private readonly ClusterSettings _settings;
    private readonly CircuitRegistry _local;
    private readonly ClusterCircuitTable _table;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly IActorRef _replicator = DistributedData.Get(Context.System).Replicator;
    private readonly Dictionary<UniqueAddress, LWWRegisterKey<CircuitShard>[]> _watched = new();
    private readonly HashSet<UniqueAddress> _gone = new();
    private CircuitShard?[] _published = [];
    private LWWRegisterKey<CircuitShard>[] _ownKeys = [];
    private string _self = "";

    public CircuitStateActor(ClusterSettings settings, CircuitRegistry local, ClusterCircuitTable table)
    {
        _settings = settings;
        _local = local;
        _table = table;
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(ClusterSettings settings, CircuitRegistry local, ClusterCircuitTable table) =>
        PropsFactory.Of(() => new CircuitStateActor(settings, local, table));

    /// <summary>Publish now instead of at the next tick (tests, and a node about to leave).</summary>
    public sealed class PublishNow : INoSerializationVerificationNeeded
    {
        public static readonly PublishNow Instance = new();

        private PublishNow()
        {
        }
    }

    private sealed class Tick : INoSerializationVerificationNeeded
    {
        public static readonly Tick Instance = new();
    }

    /// <summary>The DistributedData key of one shard of one node incarnation.</summary>
    internal static LWWRegisterKey<CircuitShard> KeyOf(UniqueAddress node, int shard) =>
        // The uid makes each incarnation's keys new: a restarted node never meets the
        // tombstones or stale values of the one before it.
        new($"{KeyPrefix}|{node.Address}|{node.Uid.ToString(CultureInfo.InvariantCulture)}|{shard.ToString(CultureInfo.InvariantCulture)}");

    protected override void PreStart()
    {
        _self = _cluster.SelfAddress.ToString();
        _published = new CircuitShard?[_settings.StateShards];
        _ownKeys = Enumerable.Range(0, _settings.StateShards).Select(s => KeyOf(_cluster.SelfUniqueAddress, s)).ToArray();
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.IMemberEvent));
        Timers.StartPeriodicTimer("publish", Tick.Instance, _settings.PublishInterval);
    }

    protected override void PostStop() => _cluster.Unsubscribe(Self);

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case Tick:
            case PublishNow:
                Publish();
                _table.Expire(DateTimeOffset.UtcNow);
                break;

            case Changed changed when changed.Key is LWWRegisterKey<CircuitShard> key:
                var shard = changed.Get(key).Value;
                if (shard is not null && !_gone.Any(g => g.Address.ToString() == shard.Node))
                {
                    _table.Put(shard);
                }

                break;

            case ClusterEvent.MemberRemoved removed:
                NodeGone(removed.Member.UniqueAddress, removed.PreviousStatus);
                break;

            case ClusterEvent.IMemberEvent member:
                Watch(member.Member.UniqueAddress);
                break;

            case UpdateSuccess:
                break;

            case UpdateTimeout timeout:
                // WriteAll could not reach every node in time; the local replica has the value
                // and DData gossip carries it to the others.
                RelayEvents.CircuitTableWriteSlow.Log(_log, timeout.Key.Id);
                break;

            default:
                Unhandled(message);
                break;
        }
    }

    private void Publish()
    {
        var shards = _settings.StateShards;
        var groups = new List<CircuitRecord>?[shards];
        foreach (var entry in _local.Snapshot())
        {
            var index = (int)(entry.Id % shards);
            (groups[index] ??= new List<CircuitRecord>()).Add(CircuitRecord.From(entry));
        }

        // The write timeout bounds how long an unreachable node can hold up the replies;
        // the next tick publishes again anyway.
        var consistency = new WriteAll(_settings.PublishInterval < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : _settings.PublishInterval);
        for (var i = 0; i < shards; i++)
        {
            var circuits = groups[i] is { } list
                ? list.OrderBy(c => c.Id).ToImmutableArray()
                : ImmutableArray<CircuitRecord>.Empty;
            var previous = _published[i];
            if (previous is null ? circuits.IsEmpty : previous.Equals(new CircuitShard(_self, i, circuits)))
            {
                continue;
            }

            var value = new CircuitShard(_self, i, circuits);
            _published[i] = value;
            var self = _cluster.SelfUniqueAddress;
            _replicator.Tell(Dsl.Update(_ownKeys[i], new LWWRegister<CircuitShard>(self, value), consistency,
                register => register.WithValue(self, value)));
        }
    }

    private void Watch(UniqueAddress node)
    {
        if (node.Equals(_cluster.SelfUniqueAddress) || _watched.ContainsKey(node) || _gone.Contains(node))
        {
            return;
        }

        var keys = Enumerable.Range(0, _settings.StateShards).Select(s => KeyOf(node, s)).ToArray();
        _watched[node] = keys;
        foreach (var key in keys)
        {
            _replicator.Tell(Dsl.Subscribe(key, Self));
        }
    }

    private void NodeGone(UniqueAddress node, MemberStatus previousStatus)
    {
        if (node.Equals(_cluster.SelfUniqueAddress) || !_gone.Add(node))
        {
            return;
        }

        if (_watched.Remove(node, out var keys))
        {
            foreach (var key in keys)
            {
                _replicator.Tell(Dsl.Unsubscribe(key, Self));
            }
        }

        var name = node.Address.ToString();
        // A node that handed its circuits over and then left (a rolling restart) may not have
        // published its emptied table in time: the circuits that now run here are not lost.
        // A route's client address and port name one circuit at a time.
        var here = _local.Snapshot().Select(e => (e.Route, CircuitRecord.ClientOf(e))).ToHashSet();
        var lost = _table.MarkLost(name, DateTimeOffset.UtcNow + _settings.LostRetention, c => here.Contains((c.Route, c.Client)));
        foreach (var c in lost)
        {
            RelayEvents.CircuitLost.Log(_log, c.Id, c.Route, c.Client, c.Upstream, name, c.BytesUp, c.BytesDown);
        }

        RelayEvents.NodeCircuitsLost.Log(_log, name, previousStatus.ToString(), lost.Length, _settings.LostRetention.ToString());
    }
}
