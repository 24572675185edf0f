using Akka.Actor;
using Relay.Actors.Circuits;
using Relay.Actors.Listening;
using Relay.Actors.Listening.Admission;
using Relay.Actors.Metrics;
using Relay.Actors.Upstreams;

namespace Relay.Actors;

/// <summary>
/// What every part of one node shares: the circuit table, the core balancer, the node's
/// name, its metrics, its upstream pools and its admission. An Akka extension, as akka.net's
/// <c>TcpExt</c>, so the guardian, listeners and acceptors find the same instance from
/// their ActorSystem instead of each taking five constructor arguments and assigning five
/// fields. Made once by <see cref="RelayNode.StartAsync"/> before the first actor starts.
/// A circuit does not look it up (an extension lookup is a dictionary read): its acceptor
/// hands over what the circuit needs. The one exception is <see cref="EgressAddress"/>, read
/// once per connect attempt of a forward route (see <c>Sockets/EgressSource</c>).
/// </summary>
public sealed class RelayNodeContext : IExtension
{
    internal RelayNodeContext(string name, CircuitRegistry registry, CoreBalancer balancer, RelayMetrics metrics, UpstreamPools pools,
        NodeAdmission admission)
    {
        Name = name;
        Registry = registry;
        Balancer = balancer;
        Metrics = metrics;
        Pools = pools;
        Admission = admission;
    }

    /// <summary>How this node names itself in the circuit table.</summary>
    public string Name { get; }

    public CircuitRegistry Registry { get; }

    public CoreBalancer Balancer { get; }

    public RelayMetrics Metrics { get; }

    public UpstreamPools Pools { get; }

    public NodeAdmission Admission { get; }

    /// <summary>
    /// The egress VIP's address (<c>relay.cluster.egress-vip</c>) when clustering is on, else
    /// null: the upstream connections of forward routes are bound to it. Fixed at start, as the
    /// cluster settings are.
    /// </summary>
    public System.Net.IPAddress? EgressAddress { get; init; }

    /// <summary>
    /// The service VIP (<c>relay.cluster.vip</c>) of a clustered node, or null: a route listening
    /// on it may bind before the address is here (IP_FREEBIND), which a handover's target does
    /// while the source still holds it, to keep the bind out of the circuits' pause.
    /// </summary>
    public System.Net.IPAddress? ServiceAddress { get; init; }

    /// <summary>The context of the node running in <paramref name="system"/>.</summary>
    /// <exception cref="InvalidOperationException">The system was not started by <see cref="RelayNode"/>.</exception>
    public static RelayNodeContext For(ActorSystem system) =>
        system.TryGetExtension<RelayNodeContext>(out var context)
            ? context
            : throw new InvalidOperationException($"the ActorSystem {system.Name} runs no relay node (start it with RelayNode.StartAsync)");

    /// <summary>Makes <paramref name="context"/> the context of <paramref name="system"/>; the first one installed stays.</summary>
    internal static RelayNodeContext Install(ActorSystem system, RelayNodeContext context) =>
        (RelayNodeContext)system.RegisterExtension(new Id(context));

    private sealed class Id(RelayNodeContext context) : ExtensionIdProvider<RelayNodeContext>
    {
        public override RelayNodeContext CreateExtension(ExtendedActorSystem system) => context;
    }
}
