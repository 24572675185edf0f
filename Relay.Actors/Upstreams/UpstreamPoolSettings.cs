using Relay.Actors.Configuration;

namespace Relay.Actors.Upstreams;

/// <summary>How a route picks the member a new circuit connects to.</summary>
public enum BalanceMode
{
    /// <summary>Each new circuit takes the next healthy member in turn.</summary>
    RoundRobin,

    /// <summary>The healthy member with the fewest open (or connecting) circuits; ties go round-robin.</summary>
    LeastCircuits,
}

/// <summary>
/// A route's upstream pool: its members, how it balances over them and how it decides a
/// member is down. One member (<c>upstream = "h:p"</c>) is a pool of one.
/// </summary>
/// <param name="Members">At least one, at most <see cref="MaxMembers"/>, no duplicates.</param>
public sealed record UpstreamPoolSettings(
    IReadOnlyList<UpstreamAddress> Members,
    BalanceMode Balance,
    PassiveHealthSettings Passive,
    HealthCheckSettings HealthCheck)
{
    /// <summary>
    /// Members per route. A circuit tracks the members it tried in one 64-bit mask, so each
    /// is tried at most once per circuit without allocating.
    /// </summary>
    public const int MaxMembers = 64;

    public static readonly PassiveHealthSettings DefaultPassive = new(3, TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(1));

    public static readonly HealthCheckSettings DefaultHealthCheck =
        new(false, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(2), 2, 3);

    /// <summary>A pool of one member with the default balancing and health settings (tests, the demo).</summary>
    public static UpstreamPoolSettings Single(UpstreamAddress member) =>
        new([member], BalanceMode.RoundRobin, DefaultPassive, DefaultHealthCheck);

    /// <summary>The members as an operator writes them: <c>a:1, b:2</c>.</summary>
    public override string ToString() => string.Join(", ", Members);

    // Records compare lists by reference; a reload compares routes by value.
    public bool Equals(UpstreamPoolSettings? other) =>
        other is not null && Members.SequenceEqual(other.Members) && Balance == other.Balance
        && Passive == other.Passive && HealthCheck == other.HealthCheck;

    public override int GetHashCode() => HashCode.Combine(Members.Count, Balance, Passive, HealthCheck);
}

/// <summary>
/// Passive health: <paramref name="Fall"/> connect failures in a row (refused, timed out,
/// unreachable) eject a member for <paramref name="Backoff"/>; each further ejection without
/// a success in between doubles it, up to <paramref name="MaxBackoff"/>. A success resets both.
/// </summary>
public sealed record PassiveHealthSettings(int Fall, TimeSpan Backoff, TimeSpan MaxBackoff);

/// <summary>
/// Active TCP health checks, like HAProxy's <c>check inter rise fall</c>: every
/// <paramref name="Interval"/> a connect to each member, which fails if not established within
/// <paramref name="Timeout"/>; <paramref name="Fall"/> failures in a row mark it down,
/// <paramref name="Rise"/> successes in a row mark it up again.
/// </summary>
public sealed record HealthCheckSettings(bool Enabled, TimeSpan Interval, TimeSpan Timeout, int Rise, int Fall);
