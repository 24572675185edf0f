using System.Net;

namespace Relay.Actors.Listening.Admission;

/// <summary>
/// What one admitted connection holds of its route's and the node's limits: released once,
/// when its circuit closes (or when a later check refuses it). It records what it took, so a
/// limit changed in between never makes a count go wrong.
/// </summary>
public sealed class AdmissionTicket
{
    private readonly CircuitLimits _route;
    private readonly CircuitLimits _node;
    private IPAddress? _routeSource;
    private IPAddress? _nodeSource;
    private int _released;

    internal AdmissionTicket(CircuitLimits route, CircuitLimits node)
    {
        _route = route;
        _node = node;
    }

    internal void HoldRouteSource(IPAddress source) => _routeSource = source;

    internal void HoldNodeSource(IPAddress source) => _nodeSource = source;

    /// <summary>Gives back every count this ticket holds. Idempotent and thread-safe.</summary>
    public void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }

        if (_routeSource is { } routeSource)
        {
            _route.CloseSource(routeSource);
        }

        if (_nodeSource is { } nodeSource)
        {
            _node.CloseSource(nodeSource);
        }

        _route.Close();
        _node.Close();
    }
}
