using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Relay.Actors.Sockets;
using Relay.Actors.Tuning;
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
    public async Task A_circuit_keeps_its_descriptor_through_the_handle_when_the_socket_objects_are_collected()
    {
        using var listener = Listener();
        using var client = await ConnectedClientAsync(listener);
        var (handle, dropped) = await AcceptDetachedAsync(listener);

        // The dropped Socket objects' finalizers would close the descriptor with them.
        await Eventually.Holds(() =>
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            return !dropped.IsAlive;
        }, "the accepted Socket object to be collected");

        Assert.False(handle.IsClosed);
        var bytes = new byte[] { 7, 8, 9 };
        Assert.Equal(3, RawSocket.Send(handle, bytes, 0, 3, out var error));
        Assert.Equal(SocketError.Success, error);
        Assert.Equal(bytes, await SocketIo.ReadExactlyAsync(client, 3));
        CircuitSockets.Close(handle, reset: false);
    }

    [Fact]
    public async Task A_handle_closes_with_a_fin_or_on_request_with_a_reset()
    {
        using var listener = Listener();
        using var finished = await ConnectedClientAsync(listener);
        var finishedHandle = CircuitSockets.Detach(await AcceptAsync(listener));
        using var reset = await ConnectedClientAsync(listener);
        var resetHandle = CircuitSockets.Detach(await AcceptAsync(listener));

        CircuitSockets.Close(finishedHandle, reset: false);
        CircuitSockets.Close(resetHandle, reset: true);
        CircuitSockets.Close(resetHandle, reset: true); // a second close does nothing

        Assert.True(finishedHandle.IsClosed);
        Assert.True(resetHandle.IsClosed);
        Assert.Equal("eof", await SocketIo.ReadUntilClosedAsync(finished, TimeSpan.FromSeconds(10)));
        Assert.Equal("reset", await SocketIo.ReadUntilClosedAsync(reset, TimeSpan.FromSeconds(10)));
        // A closed handle never reaches a system call (its number may already be reused).
        Assert.Equal(0, RawSocket.Receive(finishedHandle, new byte[4], 4, out var error));
        Assert.Equal(SocketError.OperationAborted, error);
    }

    [Fact]
    public async Task A_view_reads_options_and_addresses_and_fails_cleanly_once_the_circuit_closed_its_socket()
    {
        using var listener = Listener();
        using var client = await ConnectedClientAsync(listener);
        var handle = CircuitSockets.Detach(await AcceptAsync(listener));

        Assert.NotNull(SocketTuner.ReadTcpInfo(CircuitSockets.View(handle)));
        var connected = CircuitSockets.ConnectedView(handle);
        Assert.Equal(client.LocalEndPoint, connected.RemoteEndPoint);
        Assert.Equal(client.RemoteEndPoint, connected.LocalEndPoint);

        CircuitSockets.Close(handle, reset: false);
        var late = CircuitSockets.View(handle);
        Assert.Null(SocketTuner.ReadTcpInfo(late)); // the ObjectDisposedException it catches
        Assert.Throws<ObjectDisposedException>(() => CircuitSockets.ConnectedView(handle));
    }

    /// <summary>
    /// What a circuit does with an accepted socket: keeps the handle, and drops the Socket and
    /// the views it made; only a weak reference to the Socket comes back.
    /// </summary>
    private static async Task<(SafeSocketHandle Handle, WeakReference Socket)> AcceptDetachedAsync(Socket listener) =>
        DetachAndDropViews(await AcceptAsync(listener));

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (SafeSocketHandle, WeakReference) DetachAndDropViews(Socket accepted)
    {
        var handle = CircuitSockets.Detach(accepted);
        _ = CircuitSockets.View(handle).Available;
        _ = CircuitSockets.ConnectedView(handle).RemoteEndPoint;
        return (handle, new WeakReference(accepted));
    }

    private static Socket Listener()
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(4);
        listener.Blocking = false;
        return listener;
    }

    private static async Task<Socket> ConnectedClientAsync(Socket listener)
    {
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!);
        return client;
    }

    private static async Task<Socket> AcceptAsync(Socket listener)
    {
        Socket? accepted = null;
        await Eventually.Holds(() => NonBlockingAccept.TryAccept(listener, out accepted) != SocketError.WouldBlock, "the connection to be accepted");
        return accepted!;
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
