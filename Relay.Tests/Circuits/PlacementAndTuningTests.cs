using System.Net;
using System.Net.Sockets;
using Relay.Actors.Configuration;
using Relay.Actors.Dispatch;
using Relay.Actors.Tuning;
using Relay.Tests.Support;

namespace Relay.Tests.Circuits;

/// <summary>
/// Where circuits run (on pinned per-core threads) and how their sockets are tuned, read
/// back from the relay's own sockets with getsockopt.
/// </summary>
public sealed class PlacementAndTuningTests
{
    [Fact]
    public async Task Circuits_run_on_distinct_core_threads_each_pinned_to_its_cpu()
    {
        var release = new TaskCompletionSource();
        await using var server = new TestServer(async _ => await release.Task);
        await using var relay = await RelayHarness.StartAsync(server.Endpoint, cores: 2);
        var clients = new List<Socket>();
        for (var i = 0; i < 6; i++)
        {
            clients.Add(await SocketIo.ConnectAsync(relay.Listen()));
        }

        await Eventually.Holds(() => relay.Circuits.Snapshot().Count(c => c.ThreadId != 0) == 6, "six circuits started");
        var circuits = relay.Circuits.Snapshot();
        var threadsByCore = circuits.GroupBy(c => c.Core).ToDictionary(g => g.Key, g => g.Select(c => c.ThreadId).Distinct().ToList());

        // Each core's circuits share one thread, and the two cores' threads differ.
        Assert.Equal(2, threadsByCore.Count);
        Assert.Single(threadsByCore[0]);
        Assert.Single(threadsByCore[1]);
        Assert.NotEqual(threadsByCore[0][0], threadsByCore[1][0]);

        var cpus = ThreadAffinity.ProcessCpus();
        foreach (var (core, threads) in threadsByCore)
        {
            // The kernel's own view of the thread, independent of the relay's bookkeeping.
            var allowed = File.ReadLines($"/proc/self/task/{threads[0]}/status")
                .Single(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))
                .Split(':')[1].Trim();
            Assert.Equal(cpus[core % cpus.Count].ToString(System.Globalization.CultureInfo.InvariantCulture), allowed);
        }

        release.SetResult();
        clients.ForEach(c => c.Dispose());
    }

    [Fact]
    public async Task Each_side_gets_its_own_socket_options_read_back_with_getsockopt()
    {
        var release = new TaskCompletionSource();
        await using var server = new TestServer(async _ => await release.Task);
        var congestion = SocketTuner.AvailableCongestionControls();
        var clientSide = new SocketSideSettings(256 * 1024, 128 * 1024, true, 1200, congestion[0],
            new KeepAliveSettings(true, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(7), 4));
        var upstreamSide = new SocketSideSettings(null, 512 * 1024, false, 1300, congestion[^1],
            new KeepAliveSettings(true, TimeSpan.FromSeconds(90), TimeSpan.FromSeconds(11), 6));
        var circuit = TestSettings.Circuit() with { ClientSide = clientSide, UpstreamSide = upstreamSide };
        await using var relay = await RelayHarness.StartAsync(server.Endpoint, circuit);

        using var client = await SocketIo.ConnectAsync(relay.Listen());
        await Eventually.Holds(() => relay.Circuits.Snapshot().Any(c => c.State == Relay.Actors.Circuits.CircuitState.Established), "an established circuit");
        var entry = Assert.Single(relay.Circuits.Snapshot());

        var c = SocketTuner.Read(entry.ClientSocket!);
        Assert.Equal(2 * 256 * 1024, c.ReceiveBuffer); // Linux doubles the value for its bookkeeping
        Assert.Equal(2 * 128 * 1024, c.SendBuffer);
        Assert.True(c.NoDelay);
        Assert.InRange(c.MaxSegment, 1, 1200);
        Assert.Equal(congestion[0], c.Congestion);
        Assert.True(c.KeepAlive);
        Assert.Equal((30, 7, 4), (c.KeepAliveIdleSeconds, c.KeepAliveIntervalSeconds, c.KeepAliveCount));

        var u = SocketTuner.Read(entry.UpstreamSocket!);
        Assert.Equal(2 * 512 * 1024, u.SendBuffer);
        Assert.False(u.NoDelay);
        Assert.InRange(u.MaxSegment, 1, 1300);
        Assert.Equal(congestion[^1], u.Congestion);
        // The upstream's keepalive is set once the circuit is a second old, not at connect.
        await Eventually.Holds(() => SocketTuner.Read(entry.UpstreamSocket!).KeepAlive, "the upstream's keepalive to be set");
        u = SocketTuner.Read(entry.UpstreamSocket!);
        Assert.Equal((90, 11, 6), (u.KeepAliveIdleSeconds, u.KeepAliveIntervalSeconds, u.KeepAliveCount));

        release.SetResult();
    }
}
