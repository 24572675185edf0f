namespace Relay.Actors.Circuits;

/// <summary>
/// Where a circuit is in its life, as the outside sees it. The names are the public
/// <c>state</c> values of <c>GET /circuits</c> (lower-case, with a dash), so they never change
/// meaning. A live circuit's is derived from its supervisor's <see cref="CircuitPhase"/>;
/// <see cref="Lost"/> is given by the cluster table alone.
/// </summary>
public enum CircuitState
{
    /// <summary>The client was accepted; the upstream connection is being made.</summary>
    Connecting,

    /// <summary>Both connections are open and bytes flow both ways.</summary>
    Established,

    /// <summary>One direction has ended with a FIN; the other still flows (RFC 9293 §3.6).</summary>
    HalfClosed,

    /// <summary>Both directions have ended, or the circuit was reset; the sockets are closed.</summary>
    Closed,

    /// <summary>The node that carried the circuit left the cluster while the circuit was open.</summary>
    Lost,

    /// <summary>A handover has stopped the circuit's bytes for a moment, to move it to another node (or to go on here if it rolls back).</summary>
    HandingOver,
}

public static class CircuitStateNames
{
    public static string ToWireName(this CircuitState state) => state switch
    {
        CircuitState.Connecting => "connecting",
        CircuitState.Established => "established",
        CircuitState.HalfClosed => "half-closed",
        CircuitState.Closed => "closed",
        CircuitState.Lost => "lost",
        CircuitState.HandingOver => "handing-over",
        _ => throw new ArgumentOutOfRangeException(nameof(state), state, null),
    };

    public static bool TryParse(string wire, out CircuitState state)
    {
        foreach (var candidate in Enum.GetValues<CircuitState>())
        {
            if (string.Equals(candidate.ToWireName(), wire, StringComparison.OrdinalIgnoreCase))
            {
                state = candidate;
                return true;
            }
        }

        state = default;
        return false;
    }
}
