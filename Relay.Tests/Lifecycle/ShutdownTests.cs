using System.Net.Sockets;
using Relay.Tests.Support;

namespace Relay.Tests.Lifecycle;

/// <summary><see cref="Relay.Actors.RelayNode.ShutdownAsync"/> in process: readiness, the grace, and what it reports.</summary>
public sealed class ShutdownTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Shutdown_turns_the_node_unready_at_once_and_resets_what_outlives_the_grace()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var node = await RelayHarness.StartAsync(upstream.Endpoint);
        using var idle = await SocketIo.ConnectAsync(node.Listen());
        await idle.SendAsync(new byte[10], SocketFlags.None);
        await SocketIo.ReadExactlyAsync(idle, 10).WaitAsync(Timeout);
        Assert.True(node.IsReady);

        var shutdown = node.ShutdownAsync(TimeSpan.FromMilliseconds(500));

        Assert.False(node.IsReady); // GET /health/ready answers 503 from now on
        var summary = await shutdown.WaitAsync(Timeout);
        Assert.Equal(1, summary.OpenAtClose);
        Assert.Equal(0, summary.Finished);
        Assert.Equal(1, summary.Reset);
        Assert.True(summary.GraceRanOut);
        Assert.True(summary.Duration >= TimeSpan.FromMilliseconds(500));
        Assert.Equal("reset", await SocketIo.ReadUntilClosedAsync(idle, Timeout));
        Assert.Equal(1, node.Metrics.ForRoute("test").Sample(0, 0).ClosedByReason.Single(r => r.Key == "shutdown").Value);
        Assert.False((await node.ApplyAsync(node.Settings)).Applied); // no reload while shutting down
    }

    [Fact]
    public async Task Shutdown_with_nothing_open_returns_without_waiting_for_the_grace()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var node = await RelayHarness.StartAsync(upstream.Endpoint);

        var summary = await node.ShutdownAsync(TimeSpan.FromMinutes(10)).WaitAsync(Timeout);

        Assert.Equal(0, summary.OpenAtClose);
        Assert.Equal(0, summary.Reset);
        Assert.False(summary.GraceRanOut);
    }
}
