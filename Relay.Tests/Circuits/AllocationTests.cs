using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors;
using Relay.Actors.Dispatch;
using Relay.Tests.Support;
using Xunit.Abstractions;

namespace Relay.Tests.Circuits;

/// <summary>
/// The data path allocates nothing per chunk. Measured on the pinned core threads, where
/// every read, write and reader/writer message of a circuit runs; a process-wide figure
/// would mostly measure the test host.
/// </summary>
public sealed class AllocationTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Relaying_bulk_data_allocates_nothing_per_chunk_on_the_core_threads()
    {
        const int writeSize = 16 * 1024;
        const long total = 512L * 1024 * 1024;
        await using var server = new TestServer(async socket =>
        {
            var buffer = new byte[256 * 1024];
            while (await socket.ReceiveAsync(buffer.AsMemory(), SocketFlags.None) > 0)
            {
            }
        });
        const int window = 4 * writeSize;
        var circuit = TestSettings.Circuit(writeSize: writeSize, window: window);
        await using var relay = await RelayHarness.StartAsync(server.Endpoint, circuit, cores: 1);
        using var client = await SocketIo.ConnectAsync(relay.Listen());
        var block = new byte[256 * 1024];

        // Warm up: JIT, the idle timer, and pools: long enough for the destination to fall
        // behind, so the writer's backlog path has filled the window once (its buffers are
        // rented then, a one-time growth of the pool).
        for (var i = 0; i < 512; i++)
        {
            await client.SendAsync(block.AsMemory(), SocketFlags.None);
        }

        var entry = relay.Circuits.Snapshot().Single();
        await Eventually.Holds(() => entry.Counters.BytesUp == 512L * block.Length, "warm-up bytes relayed");
        var before = await AllocatedOnCoreThread(relay);
        var startBytes = entry.Counters.BytesUp;
        for (long sent = 0; sent < total; sent += block.Length)
        {
            await client.SendAsync(block.AsMemory(), SocketFlags.None);
        }

        await Eventually.Holds(() => entry.Counters.BytesUp - startBytes == total, "all bytes relayed", TimeSpan.FromSeconds(60));
        var allocated = await AllocatedOnCoreThread(relay) - before;

        var chunks = total / writeSize; // at least this many reads, writes and messages
        output.WriteLine($"core thread allocated {allocated:N0} bytes while relaying {total:N0} bytes in {chunks:N0}+ chunks");
        // Less than one byte per chunk (no object per chunk, which would be 24 bytes or more
        // each), beyond the one-time growth of the buffer pool to the deepest backlog seen so
        // far: at most a window of buffers plus the one being read into.
        var poolGrowth = (window / writeSize + 1) * (writeSize + 64L);
        Assert.True(allocated < chunks + poolGrowth, $"{allocated:N0} bytes allocated for {chunks:N0} chunks");
        client.Shutdown(SocketShutdown.Send);
    }

    /// <summary>Asks an actor on core 0's dispatcher for its thread's allocation counter.</summary>
    private static async Task<long> AllocatedOnCoreThread(RelayNode relay)
    {
        var probe = relay.System.ActorOf(Props.Create(() => new AllocationProbe()).WithDispatcher(CoreDispatchers.IdFor(0)));
        var bytes = await probe.Ask<long>("measure", TimeSpan.FromSeconds(5));
        relay.System.Stop(probe);
        return bytes;
    }

    private sealed class AllocationProbe : ReceiveActor
    {
        public AllocationProbe() => ReceiveAny(_ => Sender.Tell(GC.GetAllocatedBytesForCurrentThread()));
    }
}
