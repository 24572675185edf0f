using System.Net.Sockets;
using Relay.Tests.Support;
using Xunit.Abstractions;

namespace Relay.Tests.Circuits;

/// <summary>Runs alone: it measures the managed heap of the whole process.</summary>
[CollectionDefinition(nameof(HeapMeasurements), DisableParallelization = true)]
public sealed class HeapMeasurements;

/// <summary>
/// An idle circuit holds no buffer, only its actors, sockets and bookkeeping. Measured as
/// live managed bytes after a full collection, so GC slack does not count. Measured here:
/// 15.1 KB with Akka's default mailboxes, 10.3 KB with <c>CompactMailbox</c>, 4,645 B before
/// and 3,976 B after (4,110 B with a busy loop beside it) the cuts that keep the sockets'
/// handles alone, share the actors' Props and slim the circuit's objects (ops/bench/idle-heap.md,
/// "After cuts 7–13"); all with the test's own two sockets and handler, about 1.4 KB, included.
/// The bound sits between the last two: a circuit that again held a Socket object per side,
/// or Props per actor, would fail it.
/// </summary>
[Collection(nameof(HeapMeasurements))]
public sealed class IdleMemoryTests(ITestOutputHelper output)
{
    [Fact]
    public async Task An_idle_circuit_holds_less_than_4500_bytes_of_managed_memory_with_the_tests_own_sockets()
    {
        const int circuits = 2000;
        var release = new TaskCompletionSource();
        await using var server = new TestServer(async _ => await release.Task, backlog: 4096);
        await using var relay = await RelayHarness.StartAsync(server.Endpoint);
        var clients = new List<Socket>(circuits);

        // Warm up: pools, JIT, the first circuit's one-off allocations.
        for (var i = 0; i < 50; i++)
        {
            clients.Add(await SocketIo.ConnectAsync(relay.Listen()));
        }

        await Eventually.Holds(() => relay.Circuits.Snapshot().Count(c => c.State == Relay.Actors.Circuits.CircuitState.Established) == 50, "warm-up circuits established");
        var before = await SettledHeapAsync();
        for (var i = 50; i < circuits; i++)
        {
            clients.Add(await SocketIo.ConnectAsync(relay.Listen()));
        }

        await Eventually.Holds(
            () => relay.Circuits.Snapshot().Count(c => c.State == Relay.Actors.Circuits.CircuitState.Established) == circuits,
            "all circuits established", TimeSpan.FromSeconds(60));
        var after = await SettledHeapAsync();

        // The test's own client sockets are live too; they are counted against the relay, so
        // the figure is an upper bound.
        var perCircuit = (after - before) / (double)(circuits - 50);
        output.WriteLine($"{perCircuit:N0} managed bytes per idle circuit (client sockets included)");
        Assert.InRange(perCircuit, 1, 4500);

        release.SetResult();
        clients.ForEach(c => c.Dispose());
    }

    /// <summary>
    /// Live managed bytes once the heap has stopped moving. The collection runs alone, but
    /// earlier tests' nodes may still be terminating in the background: a single reading
    /// taken while one of them lets go of megabytes made the per-circuit figure negative
    /// (seen under a busy loop). Two full collections 200 ms apart within 64 KB of each other
    /// count as settled; at most 25 tries.
    /// </summary>
    private static async Task<long> SettledHeapAsync()
    {
        var last = GC.GetTotalMemory(forceFullCollection: true);
        for (var i = 0; i < 25; i++)
        {
            await Task.Delay(200);
            var now = GC.GetTotalMemory(forceFullCollection: true);
            if (Math.Abs(now - last) < 64 * 1024)
            {
                return now;
            }

            last = now;
        }

        return last;
    }
}
