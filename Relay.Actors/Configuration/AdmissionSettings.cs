using System.Net;
using Relay.Actors.Circuits.ProxyProtocol;

namespace Relay.Actors.Configuration;

/// <summary>
/// Who may open circuits on a route: client networks to <see cref="Allow"/> and to
/// <see cref="Deny"/>. Deny wins; an empty allow list allows every client not denied.
/// IPv4 networks also match IPv4 clients of a dual-stack listener (::ffff:a.b.c.d).
/// </summary>
public sealed record AccessList(IReadOnlyList<IPNetwork> Allow, IReadOnlyList<IPNetwork> Deny)
{
    public static readonly AccessList Open = new([], []);

    public bool IsOpen => Allow.Count == 0 && Deny.Count == 0;

    // By content, not list identity: two reads of one config must compare equal (a reload
    // tells changed routes from unchanged ones this way).
    public bool Equals(AccessList? other) =>
        other is not null && Allow.SequenceEqual(other.Allow) && Deny.SequenceEqual(other.Deny);

    public override int GetHashCode() => HashCode.Combine(Allow.Count, Deny.Count);
}

/// <summary>
/// Admission limits, of one route or (<c>relay.limits</c>) of the whole node. Null means
/// unlimited. A connection over a limit is accepted and reset at once.
/// </summary>
/// <param name="MaxCircuits">Circuits open at once.</param>
/// <param name="MaxCircuitsPerSource">Circuits open at once from one client address.</param>
/// <param name="AcceptRate">New connections per second (a token bucket holding one second's worth).</param>
public sealed record LimitSettings(int? MaxCircuits, int? MaxCircuitsPerSource, int? AcceptRate)
{
    public static readonly LimitSettings None = new(null, null, null);
}

/// <summary>The admission keys of one route, or of <c>relay.defaults</c> that routes start from.</summary>
public sealed record AdmissionDefaults(AccessList Access, LimitSettings Limits, ProxyProtocolSettings ProxyProtocol)
{
    public static readonly AdmissionDefaults Open = new(AccessList.Open, LimitSettings.None, ProxyProtocolSettings.Off);
}

/// <summary>
/// The PROXY protocol on a route: the header sent to upstreams (<see cref="Send"/>) and
/// whether one is expected from clients (<see cref="Accept"/>) within <see cref="HeaderTimeout"/>.
/// </summary>
public sealed record ProxyProtocolSettings(ProxyProtocolVersion Send, bool Accept, TimeSpan HeaderTimeout)
{
    public static readonly ProxyProtocolSettings Off = new(ProxyProtocolVersion.Off, false, TimeSpan.FromSeconds(5));
}
