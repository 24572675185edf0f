using System.Net;
using System.Net.Sockets;
using Relay.Actors.Circuits;
using Relay.Actors.Circuits.Internal;

namespace Relay.Tests.Circuits;

/// <summary>
/// The FinCarrier carries each direction's FIN once: a second end of the same direction (seen
/// once, after a handover rolled back under a split brain) sends nothing and reports nothing,
/// so it cannot end a circuit whose FIN already went out.
/// </summary>
public sealed class FinCarrierTests : Akka.TestKit.Xunit2.TestKit
{
    [Fact]
    public async Task A_direction_finished_twice_is_carried_and_reported_once()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var destination = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await destination.ConnectAsync(listener.LocalEndPoint!);
        using var peer = await listener.AcceptAsync();

        var supervisor = CreateTestProbe();
        var fins = new FinCarrier(supervisor.Ref);
        fins.Finish(Direction.Up, destination.SafeHandle, CircuitSide.Upstream);
        fins.Finish(Direction.Up, destination.SafeHandle, CircuitSide.Upstream);

        Assert.Equal(Direction.Up, supervisor.ExpectMsg<PumpProtocol.DirectionFinished>().Direction);
        supervisor.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.True(fins.HasFinished(Direction.Up));
        Assert.False(fins.HasFinished(Direction.Down));

        // The FIN went out (the peer reads its EOF) and the other direction is still open.
        var buffer = new byte[16];
        Assert.Equal(0, await peer.ReceiveAsync(buffer).WaitAsync(TimeSpan.FromSeconds(5)));
        await peer.SendAsync("still open"u8.ToArray());
        Assert.Equal(10, await destination.ReceiveAsync(buffer).WaitAsync(TimeSpan.FromSeconds(5)));
    }
}
