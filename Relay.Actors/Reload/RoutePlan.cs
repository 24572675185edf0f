using Relay.Actors.Configuration;

namespace Relay.Actors.Reload;

/// <summary>
/// What a reload does to the running routes, worked out before anything is touched:
/// <list type="bullet">
/// <item>a route in both sets with equal settings is left alone (its listener, its pool's health);</item>
/// <item>a removed route stops accepting and its open circuits run to their end;</item>
/// <item>an added or changed route gets a new listener; its circuits use the new settings,
/// while circuits of the old settings keep them;</item>
/// <item>where a new listener's address is one an old listener is giving up, the listening
/// socket is handed over rather than closed and bound again, so no connect is refused
/// and connections waiting in the backlog are accepted by the new listener.</item>
/// </list>
/// </summary>
public sealed class RoutePlan
{
    private RoutePlan(RouteChanges changes, IReadOnlyList<RouteSettings> released, IReadOnlyList<RouteSettings> toBind,
        IReadOnlyDictionary<string, RouteSettings> handOvers)
    {
        Changes = changes;
        Released = released;
        ToBind = toBind;
        HandOvers = handOvers;
    }

    public RouteChanges Changes { get; }

    /// <summary>Running routes whose listener retires: removed ones, and the old settings of changed ones.</summary>
    public IReadOnlyList<RouteSettings> Released { get; }

    /// <summary>New listeners that need a freshly bound socket.</summary>
    public IReadOnlyList<RouteSettings> ToBind { get; }

    /// <summary>By the name of a released route: the new route that takes over its listening socket.</summary>
    public IReadOnlyDictionary<string, RouteSettings> HandOvers { get; }

    public static RoutePlan Create(IReadOnlyList<RouteSettings> running, IReadOnlyList<RouteSettings> next)
    {
        var old = running.ToDictionary(r => r.Name, StringComparer.Ordinal);
        var names = next.Select(r => r.Name).ToHashSet(StringComparer.Ordinal);

        var added = next.Where(r => !old.ContainsKey(r.Name)).ToList();
        var changed = next.Where(r => old.TryGetValue(r.Name, out var o) && !o.Equals(r)).ToList();
        var removed = running.Where(r => !names.Contains(r.Name)).ToList();
        var released = removed.Concat(changed.Select(r => old[r.Name])).ToList();

        var handOvers = new Dictionary<string, RouteSettings>(StringComparer.Ordinal);
        var toBind = new List<RouteSettings>();
        // A changed route takes back its own socket first; then an added or moved route may
        // take the socket of a released route on the same address (port 0 means "any port",
        // so only the same route keeps its ephemeral port).
        foreach (var route in changed.Concat(added))
        {
            var donor = released.FirstOrDefault(r => r.Name == route.Name && r.Listen.Equals(route.Listen) && !handOvers.ContainsKey(r.Name))
                        ?? released.FirstOrDefault(r => route.Listen.Port != 0 && r.Listen.Equals(route.Listen) && !handOvers.ContainsKey(r.Name)
                                                        && !next.Any(n => n.Name == r.Name && n.Listen.Equals(r.Listen)));
            if (donor is null)
            {
                toBind.Add(route);
            }
            else
            {
                handOvers[donor.Name] = route;
            }
        }

        var rebound = changed.Where(r => !r.Listen.Equals(old[r.Name].Listen)).Select(r => r.Name).ToList();
        var changes = new RouteChanges(
            added.Select(r => r.Name).ToList(),
            removed.Select(r => r.Name).ToList(),
            changed.Select(r => r.Name).ToList(),
            rebound);
        return new RoutePlan(changes, released, toBind, handOvers);
    }
}
