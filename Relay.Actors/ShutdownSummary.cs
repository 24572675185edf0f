namespace Relay.Actors;

/// <summary>What <see cref="RelayNode.ShutdownAsync"/> did.</summary>
/// <param name="OpenAtClose">Circuits open when the listeners closed.</param>
/// <param name="Finished">Of those, the ones that ended on their own within the grace.</param>
/// <param name="Reset">The ones reset with reason <c>shutdown</c>.</param>
/// <param name="GraceRanOut">True when the grace ran out (rather than a second signal cutting it short).</param>
public sealed record ShutdownSummary(int OpenAtClose, int Finished, int Reset, TimeSpan Duration, bool GraceRanOut);
