using System.Net;
using System.Net.Sockets;
using Relay.Actors.Sockets;
using Relay.Tests.Support;

namespace Relay.Tests.Sockets;

/// <summary>
/// The Socket objects the relay makes from its own descriptors without the constructor's
/// queries: they must still answer what the rest of the relay (and the management API) asks.
/// </summary>
public sealed class CircuitSocketsTests
{
    [Fact]
    public async Task An_accepted_descriptor_wraps_without_queries_and_still_knows_its_endpoints()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(4);
        listener.Blocking = false;
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!);

        Socket? accepted = null;
        await Eventually.Holds(() => NonBlockingAccept.TryAccept(listener, out accepted) != SocketError.WouldBlock, "the connection to be accepted");

        Assert.NotNull(accepted);
        Assert.True(CircuitSockets.FastPath, "this runtime's Socket lacks the private members the fast path uses");
        Assert.Equal(client.LocalEndPoint, accepted!.RemoteEndPoint);
        Assert.Equal(client.RemoteEndPoint, accepted.LocalEndPoint);
        Assert.Equal(AddressFamily.InterNetwork, accepted.AddressFamily);
        Assert.Equal(ProtocolType.Tcp, accepted.ProtocolType);
        Assert.False(accepted.Blocking);
        Assert.True(accepted.Connected);

        // Non-blocking at the descriptor: an empty socket says WouldBlock instead of waiting.
        var buffer = new byte[16];
        Assert.Equal(0, RawSocket.Receive(accepted, buffer, buffer.Length, out var error));
        Assert.Equal(SocketError.WouldBlock, error);

        await client.SendAsync(new byte[] { 1, 2, 3 }, SocketFlags.None);
        var read = 0;
        await Eventually.Holds(() => (read = RawSocket.Receive(accepted, buffer, buffer.Length, out error)) != 0 || error != SocketError.WouldBlock,
            "the client's bytes to arrive");

        Assert.Equal(3, read);
        Assert.Equal(3, RawSocket.Send(accepted, buffer, 0, 3, out error));
        Assert.Equal(SocketError.Success, RawSocket.ShutdownSend(accepted));
        var echoed = await SocketIo.ReadToEndAsync(client);
        Assert.Equal(3, echoed.Bytes);

        CircuitSockets.Close(accepted);
        Assert.True(accepted.SafeHandle.IsClosed);
        // A closed socket never reaches a system call (its number may already be reused).
        Assert.Equal(0, RawSocket.Receive(accepted, buffer, buffer.Length, out error));
        Assert.Equal(SocketError.OperationAborted, error);
    }

    [Fact]
    public async Task An_upstream_socket_binds_a_source_address_then_connects_without_blocking()
    {
        // Transparent routes bind the upstream socket to a source address before connecting.
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(4);
        var target = (IPEndPoint)listener.LocalEndPoint!;

        var upstream = CircuitSockets.CreateForConnect(target);
        try
        {
            upstream.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var source = (IPEndPoint)upstream.LocalEndPoint!;
            Assert.NotEqual(0, source.Port);

            var started = NonBlockingConnect.Start(upstream, target);
            Assert.Contains(started, new[] { SocketError.Success, SocketError.WouldBlock });
            using var accepted = await listener.AcceptAsync();
            Assert.Equal(source, accepted.RemoteEndPoint);
            Assert.Equal(SocketError.Success, NonBlockingConnect.Finish(upstream));
        }
        finally
        {
            CircuitSockets.Close(upstream);
        }
    }

    [Fact]
    public void Peer_addresses_from_accept4_parse_for_both_families()
    {
        var v4 = new IPEndPoint(IPAddress.Parse("198.18.0.7"), 40123);
        var v6 = new IPEndPoint(IPAddress.Parse("fe80::1"), 443) { Address = { ScopeId = 3 } };

        Assert.Equal(v4, CircuitSockets.ParseAddress(Serialize(v4)));
        Assert.Equal(v6, CircuitSockets.ParseAddress(Serialize(v6)));
        Assert.Null(CircuitSockets.ParseAddress(new byte[] { 1, 0, 0, 0 }));
    }

    private static byte[] Serialize(IPEndPoint endpoint)
    {
        var address = endpoint.Serialize();
        var bytes = new byte[address.Size];
        for (var i = 0; i < bytes.Length; i++)
        {
            bytes[i] = address[i];
        }

        return bytes;
    }
}
