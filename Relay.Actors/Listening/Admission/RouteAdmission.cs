using System.Diagnostics;
using System.Net;
using Relay.Actors.Circuits.ProxyProtocol;
using Relay.Actors.Configuration;

namespace Relay.Actors.Listening.Admission;

/// <summary>
/// Admission control of one route: its access list, its limits and the node's, shared by the
/// route's acceptors on every core. An acceptor asks <see cref="TryAdmit"/> for each accepted
/// connection and gets a ticket, released when the circuit closes, or a refusal reason.
/// <para>
/// Two steps, because on an accept-proxy-protocol route the client is known only after its
/// PROXY header: at accept the rates and circuit counts are taken (so a client that never
/// sends its header still counts against max-circuits), and once the client's address is
/// known the access list and the per-source counts are checked (<see cref="TryAdmitSource"/>).
/// On other routes <see cref="TryAdmit"/> does both at once.
/// </para>
/// </summary>
public sealed class RouteAdmission
{
    private readonly CircuitLimits _limits = new();
    private readonly CircuitLimits _node;
    private volatile AccessList _access = AccessList.Open;
    private int _pausedAcceptors;

    internal RouteAdmission(string route, CircuitLimits node)
    {
        Route = route;
        _node = node;
    }

    public string Route { get; }

    /// <summary>Circuits this route holds admission for now.</summary>
    public long Active => _limits.Active;

    /// <summary>Circuits from <paramref name="source"/> counted on this route (per-source limit set only).</summary>
    public int OpenFrom(IPAddress source) => _limits.OpenFrom(ClientAddress.Normalize(source));

    /// <summary>Client addresses tracked for the per-source limit; 0 once every circuit has gone.</summary>
    public int TrackedSources => _limits.TrackedSources;

    /// <summary>One <c>ClientRefused</c> line per second for the route, whatever the flood.</summary>
    internal LogThrottle RefusalLog { get; } = new();

    /// <summary>One <c>ProxyHeaderRejected</c> line per second for the route.</summary>
    internal LogThrottle HeaderLog { get; } = new();

    /// <summary>Takes the route's current settings; counts carry over, so a change applies to new connections.</summary>
    public void Apply(RouteSettings route)
    {
        ArgumentNullException.ThrowIfNull(route);
        _access = route.Access;
        _limits.Apply(route.Limits);
    }

    /// <summary>
    /// Step one for every connection, and step two as well when <paramref name="client"/> is
    /// given. Null with the refusal in <paramref name="reason"/> (one of <see cref="RefusalReasons"/>).
    /// </summary>
    public AdmissionTicket? TryAdmit(IPAddress? client, out string reason)
    {
        var address = client is null ? null : ClientAddress.Normalize(client);
        // The access list first: it is stateless, and a denied client must not spend tokens.
        if (address is not null && CheckAccess(address) is { } refused)
        {
            reason = refused;
            return null;
        }

        var now = Stopwatch.GetTimestamp();
        var routeRate = _limits.Rate;
        if (routeRate is not null && !routeRate.TryTake(now))
        {
            reason = RefusalReasons.AcceptRate;
            return null;
        }

        var nodeRate = _node.Rate;
        if (nodeRate is not null && !nodeRate.TryTake(now))
        {
            routeRate?.GiveBack();
            reason = RefusalReasons.NodeAcceptRate;
            return null;
        }

        // A connection refused for a count was not admitted, so its tokens are given back.
        if (!_limits.TryOpen())
        {
            routeRate?.GiveBack();
            nodeRate?.GiveBack();
            reason = RefusalReasons.MaxCircuits;
            return null;
        }

        if (!_node.TryOpen())
        {
            _limits.Close();
            routeRate?.GiveBack();
            nodeRate?.GiveBack();
            reason = RefusalReasons.NodeMaxCircuits;
            return null;
        }

        var ticket = new AdmissionTicket(_limits, _node);
        if (address is not null && !TryCountSource(ticket, address, out reason))
        {
            return null;
        }

        reason = "";
        return ticket;
    }

    /// <summary>
    /// Step two once the client is known (from its PROXY header): the access list and the
    /// per-source limits. On refusal the whole <paramref name="ticket"/> is released.
    /// </summary>
    public bool TryAdmitSource(AdmissionTicket ticket, IPAddress client, out string reason)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        var address = ClientAddress.Normalize(client);
        if (CheckAccess(address) is { } refused)
        {
            ticket.Release();
            reason = refused;
            return false;
        }

        return TryCountSource(ticket, address, out reason);
    }

    /// <summary>
    /// Admits a circuit handed over from another node: it was admitted there under the same
    /// settings, and refusing it now would reset a live connection the operator asked to keep,
    /// so it is counted (route, node, per source) even past a limit. The access list and the
    /// rates are not applied: they govern new connections.
    /// </summary>
    public AdmissionTicket AdmitMoved(IPAddress client)
    {
        var address = ClientAddress.Normalize(client);
        _limits.ForceOpen();
        _node.ForceOpen();
        var ticket = new AdmissionTicket(_limits, _node);
        if (_limits.LimitsSources)
        {
            _limits.ForceOpenSource(address);
            ticket.HoldRouteSource(address);
        }

        if (_node.LimitsSources)
        {
            _node.ForceOpenSource(address);
            ticket.HoldNodeSource(address);
        }

        return ticket;
    }

    private bool TryCountSource(AdmissionTicket ticket, IPAddress address, out string reason)
    {
        if (_limits.LimitsSources)
        {
            if (!_limits.TryOpenSource(address))
            {
                ticket.Release();
                reason = RefusalReasons.MaxCircuitsPerSource;
                return false;
            }

            ticket.HoldRouteSource(address);
        }

        if (_node.LimitsSources)
        {
            if (!_node.TryOpenSource(address))
            {
                ticket.Release();
                reason = RefusalReasons.NodeMaxCircuitsPerSource;
                return false;
            }

            ticket.HoldNodeSource(address);
        }

        reason = "";
        return true;
    }

    private string? CheckAccess(IPAddress address)
    {
        var access = _access;
        if (access.IsOpen)
        {
            return null;
        }

        foreach (var network in access.Deny)
        {
            if (network.Contains(address))
            {
                return RefusalReasons.Denied;
            }
        }

        if (access.Allow.Count == 0)
        {
            return null;
        }

        foreach (var network in access.Allow)
        {
            if (network.Contains(address))
            {
                return null;
            }
        }

        return RefusalReasons.NotAllowed;
    }

    /// <summary>An acceptor of the route has stopped accepting (descriptors ran out); true for the first.</summary>
    internal bool EnterPause() => Interlocked.Increment(ref _pausedAcceptors) == 1;

    /// <summary>An acceptor accepts again; true for the last, when the route is accepting on every core again.</summary>
    internal bool LeavePause() => Interlocked.Decrement(ref _pausedAcceptors) == 0;
}
