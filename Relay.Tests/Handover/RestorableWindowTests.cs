using Relay.Actors.Handover;

namespace Relay.Tests.Handover;

/// <summary>
/// The dumped window is given back as the kernel's tcp_repair_set_window accepts it: an snd_wl1
/// past rcv_nxt + rcv_wnd (an out-of-order segment taken while the receive window was closed)
/// and a max_window under snd_wnd are brought within bounds, with sequence numbers that wrap;
/// a window already within bounds is given back unchanged.
/// </summary>
public sealed class RestorableWindowTests
{
    [Theory]
    // snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup, rcv_nxt -> snd_wl1, max_window
    [InlineData(1000u, 500u, 800u, 4000u, 900u, 1000u, 1000u, 800u)] // within bounds: unchanged
    [InlineData(5001u, 500u, 800u, 4000u, 900u, 1000u, 1000u, 800u)] // past rcv_nxt + rcv_wnd by one
    [InlineData(5000u, 500u, 800u, 4000u, 900u, 1000u, 5000u, 800u)] // at the bound: kept
    [InlineData(1500u, 500u, 800u, 0u, 1000u, 1000u, 1000u, 800u)] // a closed window, a segment beyond it
    [InlineData(10u, 500u, 800u, 0u, 4294967290u, 4294967290u, 4294967290u, 800u)] // snd_wl1 wrapped past a closed window's edge
    [InlineData(1000u, 900u, 800u, 4000u, 900u, 1000u, 1000u, 900u)] // max_window under snd_wnd
    public void The_window_is_brought_within_what_the_kernel_accepts(uint sndWl1, uint sndWnd, uint maxWindow, uint rcvWnd, uint rcvWup, uint receiveNext,
        uint expectedSndWl1, uint expectedMaxWindow)
    {
        var window = new TcpRepairWindow(sndWl1, sndWnd, maxWindow, rcvWnd, rcvWup);
        var restorable = TcpRepair.RestorableWindow(window, receiveNext);
        Assert.Equal(window with { SndWl1 = expectedSndWl1, MaxWindow = expectedMaxWindow }, restorable);
    }
}
