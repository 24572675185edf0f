using System.Collections.Concurrent;
using Akka.Actor;
using Relay.Actors.Configuration;

namespace Relay.Actors.Listening.Admission;

/// <summary>
/// The node's admission state, as an Akka extension so every acceptor of the ActorSystem
/// finds the same instance without it being threaded through the actor tree: the node-wide
/// limits (<c>relay.limits</c>) and one <see cref="RouteAdmission"/> per route name. Keyed by
/// name, so a route restarted with new settings keeps counting its open circuits.
/// </summary>
public sealed class NodeAdmission : IExtension
{
    private readonly ConcurrentDictionary<string, RouteAdmission> _routes = new(StringComparer.Ordinal);

    internal CircuitLimits Limits { get; } = new();

    /// <summary>Circuits admitted on the node and not yet closed.</summary>
    public long Active => Limits.Active;

    /// <summary>Client addresses tracked for the node-wide per-source limit.</summary>
    public int TrackedSources => Limits.TrackedSources;

    public static NodeAdmission For(ActorSystem system) => system.WithExtension<NodeAdmission, NodeAdmissionId>();

    /// <summary>Takes the node-wide limits; open circuits stay counted.</summary>
    public void Apply(LimitSettings limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        Limits.Apply(limits);
    }

    /// <summary>The admission of <paramref name="route"/>, updated to its settings.</summary>
    public RouteAdmission ForRoute(RouteSettings route)
    {
        ArgumentNullException.ThrowIfNull(route);
        var admission = _routes.GetOrAdd(route.Name, static (name, limits) => new RouteAdmission(name, limits), Limits);
        admission.Apply(route);
        return admission;
    }

    /// <summary>The admission of the route called <paramref name="route"/>, if it has accepted anything.</summary>
    public RouteAdmission? Find(string route) => _routes.GetValueOrDefault(route);
}

/// <summary>INTERNAL API. Makes the <see cref="NodeAdmission"/> of an ActorSystem.</summary>
public sealed class NodeAdmissionId : ExtensionIdProvider<NodeAdmission>
{
    public override NodeAdmission CreateExtension(ExtendedActorSystem system) => new();
}
