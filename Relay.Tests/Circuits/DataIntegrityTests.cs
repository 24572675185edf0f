using System.Net.Sockets;
using Relay.Tests.Support;

namespace Relay.Tests.Circuits;

/// <summary>Every byte arrives, in order, in both directions at once.</summary>
public sealed class DataIntegrityTests
{
    [Fact]
    public async Task Large_simultaneous_transfers_in_both_directions_arrive_intact()
    {
        const long upBytes = 48L * 1024 * 1024;
        const long downBytes = 40L * 1024 * 1024;
        byte[]? serverReceivedHash = null;
        byte[]? serverSentHash = null;
        await using var server = new TestServer(async socket =>
        {
            // The server sends and receives at the same time, then ends its direction.
            var sending = SocketIo.SendRandomAsync(socket, downBytes, seed: 2);
            var (received, hash) = await SocketIo.ReadToEndAsync(socket);
            serverSentHash = await sending;
            socket.Shutdown(SocketShutdown.Send);
            Assert.Equal(upBytes, received);
            serverReceivedHash = hash;
        });
        await using var relay = await RelayHarness.StartAsync(server.Endpoint);

        using var client = await SocketIo.ConnectAsync(relay.Listen());
        var reading = SocketIo.ReadToEndAsync(client);
        var sentHash = await SocketIo.SendRandomAsync(client, upBytes, seed: 1);
        client.Shutdown(SocketShutdown.Send);
        var (downReceived, downHash) = await reading.WaitAsync(TimeSpan.FromSeconds(60));

        await server.DrainAsync(TimeSpan.FromSeconds(10));
        Assert.Empty(server.Failures);
        Assert.Equal(downBytes, downReceived);
        Assert.Equal(serverSentHash, downHash);
        Assert.Equal(sentHash, serverReceivedHash);
    }

    [Fact]
    public async Task Many_concurrent_circuits_each_echo_their_own_bytes()
    {
        const int circuits = 200;
        const int bytesEach = 256 * 1024;
        await using var server = new TestServer(TestServer.Echo);
        await using var relay = await RelayHarness.StartAsync(server.Endpoint);

        var runs = Enumerable.Range(0, circuits).Select(async i =>
        {
            using var client = await SocketIo.ConnectAsync(relay.Listen());
            var reading = SocketIo.ReadToEndAsync(client);
            var sent = await SocketIo.SendRandomAsync(client, bytesEach, seed: 100 + i, chunk: 16 * 1024);
            client.Shutdown(SocketShutdown.Send);
            var (bytes, hash) = await reading;
            Assert.Equal(bytesEach, bytes);
            Assert.Equal(sent, hash);
        });
        await Task.WhenAll(runs).WaitAsync(TimeSpan.FromSeconds(120));

        Assert.Equal(circuits, server.Accepted);
        await Eventually.Holds(() => relay.Circuits.Count == 0, "every circuit to close");
    }

    [Fact]
    public async Task Circuits_are_spread_over_the_core_dispatchers()
    {
        var release = new TaskCompletionSource();
        await using var server = new TestServer(async _ => await release.Task);
        await using var relay = await RelayHarness.StartAsync(server.Endpoint, cores: 2);

        var clients = new List<Socket>();
        for (var i = 0; i < 8; i++)
        {
            clients.Add(await SocketIo.ConnectAsync(relay.Listen()));
        }

        await Eventually.Holds(() => relay.Circuits.Count == 8, "eight live circuits");
        var perCore = relay.Circuits.Snapshot().GroupBy(c => c.Core).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(4, perCore[0]);
        Assert.Equal(4, perCore[1]);
        Assert.Equal(4, relay.Cores.ActiveOn(0));

        release.SetResult();
        clients.ForEach(c => c.Dispose());
        await Eventually.Holds(() => relay.Cores.ActiveOn(0) + relay.Cores.ActiveOn(1) == 0, "cores to be released");
    }
}
