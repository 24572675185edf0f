using Relay.Actors.Circuits;

namespace Relay.Tests.Circuits;

/// <summary>The rules of a circuit's phases: which moves exist, and the state the outside sees for each.</summary>
public sealed class CircuitPhaseTests
{
    [Fact]
    public void A_circuit_only_moves_forward_or_through_a_handover_and_can_close_from_any_live_phase()
    {
        var allowed = new HashSet<(CircuitPhase, CircuitPhase)>
        {
            (CircuitPhase.Connecting, CircuitPhase.Established),
            (CircuitPhase.Established, CircuitPhase.UpFinished),
            (CircuitPhase.Established, CircuitPhase.DownFinished),
            (CircuitPhase.Connecting, CircuitPhase.Closed),
            (CircuitPhase.Established, CircuitPhase.Closed),
            (CircuitPhase.UpFinished, CircuitPhase.Closed),
            (CircuitPhase.DownFinished, CircuitPhase.Closed),
            // A handover freezes an open circuit, and a thaw (or a circuit found not movable)
            // returns it to the open phase it froze from; released or reset, it is closed.
            (CircuitPhase.Established, CircuitPhase.Freezing),
            (CircuitPhase.UpFinished, CircuitPhase.Freezing),
            (CircuitPhase.DownFinished, CircuitPhase.Freezing),
            (CircuitPhase.Freezing, CircuitPhase.Frozen),
            (CircuitPhase.Freezing, CircuitPhase.Established),
            (CircuitPhase.Freezing, CircuitPhase.UpFinished),
            (CircuitPhase.Freezing, CircuitPhase.DownFinished),
            (CircuitPhase.Frozen, CircuitPhase.Established),
            (CircuitPhase.Frozen, CircuitPhase.UpFinished),
            (CircuitPhase.Frozen, CircuitPhase.DownFinished),
            (CircuitPhase.Freezing, CircuitPhase.Closed),
            (CircuitPhase.Frozen, CircuitPhase.Closed),
        };
        foreach (var from in Enum.GetValues<CircuitPhase>())
        {
            foreach (var to in Enum.GetValues<CircuitPhase>())
            {
                Assert.True(allowed.Contains((from, to)) == CircuitPhases.CanMove(from, to), $"{from} -> {to}");
            }
        }
    }

    [Fact]
    public void Each_phase_shows_one_public_state()
    {
        Assert.Equal(CircuitState.Connecting, CircuitPhase.Connecting.ToPublicState());
        Assert.Equal(CircuitState.Established, CircuitPhase.Established.ToPublicState());
        Assert.Equal(CircuitState.HalfClosed, CircuitPhase.UpFinished.ToPublicState());
        Assert.Equal(CircuitState.HalfClosed, CircuitPhase.DownFinished.ToPublicState());
        Assert.Equal(CircuitState.Closed, CircuitPhase.Closed.ToPublicState());
        Assert.Equal(CircuitState.HandingOver, CircuitPhase.Freezing.ToPublicState());
        Assert.Equal(CircuitState.HandingOver, CircuitPhase.Frozen.ToPublicState());
    }
}
