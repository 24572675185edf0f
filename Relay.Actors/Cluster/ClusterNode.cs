using System.Text;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Tools.Singleton;
using Akka.Configuration;
using Akka.Event;
using Relay.Actors.Circuits;
using Relay.Actors.Configuration;
using Relay.Actors.Handover;
using Relay.Actors.Logging;
using ClusterSettings = Relay.Actors.Configuration.ClusterSettings;

namespace Relay.Actors.Cluster;

/// <summary>
/// A relay node's part in a cluster of appliances: the circuit-table replication
/// (<c>/user/cluster-state</c>), the membership log (<c>/user/cluster-events</c>) and the
/// service-owner singleton (<c>/user/service-owner</c>). Built by
/// <see cref="RelayNode.StartAsync"/> when <c>relay.cluster.enabled = on</c>.
/// </summary>
public sealed class ClusterNode
{
    /// <summary>The logical name of the embedded <c>hocon/cluster-akka.conf</c>.</summary>
    public const string AkkaDefaultsResourceName = "Relay.cluster-akka.conf";

    private static readonly Lazy<Config> Defaults = new(() => ConfigurationFactory.ParseString(AkkaDefaultsText));

    private ClusterNode(Akka.Cluster.Cluster cluster, ClusterCircuitTable table, ServiceState service, IActorRef state, ClusterSettings settings,
        VipController? addresses)
    {
        Cluster = cluster;
        Table = table;
        Service = service;
        StateActor = state;
        Settings = settings;
        FloatingAddresses = addresses;
    }

    /// <summary>The Akka settings a clustered node starts from; an operator's akka.* keys override them.</summary>
    public static Config AkkaDefaults => Defaults.Value;

    /// <summary>hocon/cluster-akka.conf as text, comments included.</summary>
    public static string AkkaDefaultsText
    {
        get
        {
            using var stream = typeof(ClusterNode).Assembly.GetManifestResourceStream(AkkaDefaultsResourceName)
                ?? throw new InvalidOperationException($"The build did not embed {AkkaDefaultsResourceName}.");
            using var reader = new StreamReader(stream, Encoding.UTF8);
            return reader.ReadToEnd();
        }
    }

    public Akka.Cluster.Cluster Cluster { get; }

    /// <summary>Circuits of the other nodes, and of lost nodes.</summary>
    public ClusterCircuitTable Table { get; }

    /// <summary>Whether this node owns the service now.</summary>
    public ServiceState Service { get; }

    /// <summary><c>/user/cluster-state</c>; tests tell it <see cref="CircuitStateActor.PublishNow"/>.</summary>
    public IActorRef StateActor { get; }

    public ClusterSettings Settings { get; }

    /// <summary>
    /// The VIP and the egress VIP (<see cref="ClusterSettings.FloatingAddresses"/>), which the
    /// service owner holds; null when neither is configured. Its sockets are open for the
    /// node's life, in the node's network namespace.
    /// </summary>
    public VipController? FloatingAddresses { get; }

    /// <summary><c>/user/handover</c>: hands this node's circuits to another, and takes theirs (<see cref="HandoverProtocol"/>).</summary>
    public IActorRef Handovers { get; private set; } = ActorRefs.Nobody;

    /// <summary>
    /// Hands every movable circuit to the standby (or <paramref name="target"/>): the answer says
    /// how it went, and never throws for a handover that could not be done.
    /// </summary>
    public async Task<HandoverProtocol.Outcome> HandOverAsync(string? target, string trigger, TimeSpan timeout)
    {
        try
        {
            return await Handovers.Ask<HandoverProtocol.Outcome>(new HandoverProtocol.Start(target, trigger), timeout);
        }
        catch (Exception e) when (e is AskTimeoutException or TaskCanceledException)
        {
            return new HandoverProtocol.Outcome(HandoverProtocol.Results.Failed,
                $"no outcome within {timeout.TotalSeconds:0} s: the handover may still be running (its HandoverCompleted, HandoverRolledBack or HandoverFailed line will say)",
                target, 0, 0, 0, 0, 0);
        }
    }

    /// <summary>This node's address, as its circuits name their node.</summary>
    public string SelfAddress => Cluster.SelfAddress.ToString();

    /// <summary>A healthy member: Up (or WeaklyUp/Leaving) and not removed or downed.</summary>
    public bool IsHealthyMember
    {
        get
        {
            if (Cluster.IsTerminated)
            {
                return false;
            }

            var status = Cluster.SelfMember.Status;
            return status == MemberStatus.Up || status == MemberStatus.WeaklyUp;
        }
    }

    internal static ClusterNode Start(ActorSystem system, ClusterSettings settings, IActorRef guardian, RelayNodeContext node)
    {
        var circuits = node.Registry;
        var cluster = Akka.Cluster.Cluster.Get(system);
        var log = Akka.Event.Logging.GetLogger(system, typeof(ClusterNode));
        var vip = settings.FloatingAddresses is { Count: > 0 } addresses ? new VipController(addresses) : null;
        if (vip is not null)
        {
            system.RegisterOnTermination(vip.Dispose);
            // Said now, not at the first failover: this node could take the VIP but not announce it.
            if (vip.Open() is { Ok: false } closed)
            {
                RelayEvents.VipAnnounceFailed.Log(log, string.Join(", ", vip.Addresses.Select(a => a.Address)),
                    string.Join(", ", vip.Addresses.Select(a => a.Device).Distinct()), closed.Problem);
            }

            // A relay killed while it owned the service left its addresses behind; while they
            // are there this host answers ARP for them, competing with the real owner.
            var removed = vip.Remove();
            if (!removed.Ok)
            {
                RelayEvents.VipRemoveFailedAtStart.Log(log, removed.Problem);
            }
        }

        var table = new ClusterCircuitTable();
        var service = new ServiceState();
        var state = system.ActorOf(CircuitStateActor.Props(settings, circuits, table), "cluster-state");
        system.ActorOf(ClusterEventsActor.Props(), "cluster-events");
        system.ActorOf(DowningHoldsActor.Props(), DowningHoldsActor.Name);
        system.ActorOf(
            ClusterSingletonManager.Props(
                ServiceOwnerActor.Props(settings, guardian, service, vip),
                ServiceOwnerActor.Release.Instance,
                ClusterSingletonManagerSettings.Create(system).WithSingletonName("owner")),
            "service-owner");

        if (system.Settings.Config.GetStringList("akka.cluster.seed-nodes").Count == 0)
        {
            // Joining itself would make each such node a cluster of one, and every one of them
            // would take the VIP: wait to be joined instead (POST /cluster/members, or a test).
            RelayEvents.ClusterSeedNodesMissing.Log(log, cluster.SelfAddress.ToString());
        }

        RelayEvents.ClusterStarting.Log(log, cluster.SelfAddress.ToString(), settings.Mode.ToString(), settings.Vip?.ToString() ?? "none");
        var clusterNode = new ClusterNode(cluster, table, service, state, settings, vip);
        clusterNode.Handovers = system.ActorOf(HandoverCoordinator.Props(clusterNode, guardian, node, node.Metrics.Handovers), "handover");
        return clusterNode;
    }
}
