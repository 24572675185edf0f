namespace Relay.Actors.Reload;

/// <summary>The route names a reload added, removed, changed, and (among the changed) moved to a new listen address.</summary>
public sealed record RouteChanges(
    IReadOnlyList<string> Added,
    IReadOnlyList<string> Removed,
    IReadOnlyList<string> Changed,
    IReadOnlyList<string> Rebound)
{
    public bool IsEmpty => Added.Count == 0 && Removed.Count == 0 && Changed.Count == 0;

    /// <summary>One phrase for the log: <c>added b; removed c; changed a (rebound a)</c>, or <c>no route changed</c>.</summary>
    public override string ToString()
    {
        if (IsEmpty)
        {
            return "no route changed";
        }

        var parts = new List<string>();
        if (Added.Count > 0)
        {
            parts.Add($"added {string.Join(", ", Added)}");
        }

        if (Removed.Count > 0)
        {
            parts.Add($"removed {string.Join(", ", Removed)}");
        }

        if (Changed.Count > 0)
        {
            var rebound = Rebound.Count > 0 ? $" (rebound {string.Join(", ", Rebound)})" : "";
            parts.Add($"changed {string.Join(", ", Changed)}{rebound}");
        }

        return string.Join("; ", parts);
    }
}
