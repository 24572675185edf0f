using Relay.Actors.Reload;

namespace Relay.Actors;

/// <summary>What <see cref="RelayNode.ApplyAsync"/> did.</summary>
/// <param name="Applied">True when the new routes run; false when rejected (the running config stays).</param>
/// <param name="Problem">Why it was rejected: one line.</param>
/// <param name="Changes">The routes added, removed, changed and rebound (null when rejected).</param>
/// <param name="RestartNeeded">Sections that changed but only take effect on a restart.</param>
public sealed record ReloadOutcome(bool Applied, string? Problem, RouteChanges? Changes, IReadOnlyList<string> RestartNeeded)
{
    public static ReloadOutcome Rejected(string problem) => new(false, problem, null, []);
}
