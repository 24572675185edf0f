using System.Net;
using Relay.Actors.Configuration;
using Relay.Actors.Handover;

namespace Relay.Tests.Handover;

/// <summary>
/// The target's receiver over a real state channel on loopback. After the source's Commit the
/// circuits and the addresses are the target's: an abort then (the channel failing under the
/// last word, as a source that stopped waiting for it closes the channel) must take nothing
/// apart. Seen in scenario B: the target aborted after adopting 1,000 circuits, and closed
/// every one of them under its running pumps.
/// </summary>
public sealed class CircuitReceiverTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task An_abort_after_the_commit_touches_nothing()
    {
        using var offer = StateChannelOffer.Open(IPAddress.Loopback, IPAddress.Loopback, TimeSpan.FromSeconds(30));
        var accepting = offer.AcceptAsync();
        using var source = await StateChannel.ConnectAsync(offer.Endpoint, offer.Token, IPAddress.Loopback).WaitAsync(Bound);
        using var target = await accepting.WaitAsync(Bound);

        // No guard: an abort that reached for it, or for the addresses, would throw.
        var receiver = new CircuitReceiver(null!, null, HandoverSettings.Default, () => Task.FromResult(true));
        var receiving = receiver.ReceiveAsync(target);
        await source.SendAsync(HandoverProtocol.Frames.Commit, ReadOnlyMemory<byte>.Empty, CancellationToken.None).AsTask().WaitAsync(Bound);

        Assert.True(await receiving.WaitAsync(Bound));
        Assert.True(receiver.Committed);
        receiver.Abort();
    }

    [Fact]
    public async Task A_source_that_ends_the_channel_before_its_commit_leaves_the_receiver_uncommitted()
    {
        using var offer = StateChannelOffer.Open(IPAddress.Loopback, IPAddress.Loopback, TimeSpan.FromSeconds(30));
        var accepting = offer.AcceptAsync();
        var source = await StateChannel.ConnectAsync(offer.Endpoint, offer.Token, IPAddress.Loopback).WaitAsync(Bound);
        using var target = await accepting.WaitAsync(Bound);

        var receiver = new CircuitReceiver(null!, null, HandoverSettings.Default, () => Task.FromResult(true));
        var receiving = receiver.ReceiveAsync(target);
        source.Dispose();

        Assert.False(await receiving.WaitAsync(Bound));
        Assert.False(receiver.Committed);
    }
}
