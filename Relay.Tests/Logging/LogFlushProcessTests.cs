using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Relay.Tests.Hosting;
using Relay.Tests.Native;
using Relay.Tests.Support;

namespace Relay.Tests.Logging;

/// <summary>The log is written in bursts off the logger's thread: what was logged before exit must still reach stdout.</summary>
public sealed class LogFlushProcessTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task The_CircuitClosed_lines_of_the_last_circuits_before_SIGTERM_are_all_written()
    {
        const int Circuits = 40;
        await using var server = new TestServer(TestServer.Echo);
        using var relay = RelayProcess.Start("run", "--route", $"echo@127.0.0.1:0={server.Endpoint}",
            "--management", "off", "--log-format", "json");
        var bound = JsonDocument.Parse(await relay.WaitForLineAsync(l => l.Contains("\"ListenerBound\""), Wait)).RootElement;
        var listen = IPEndPoint.Parse(bound.GetProperty("Listen").GetString()!);

        for (var i = 0; i < Circuits; i++)
        {
            using var client = await SocketIo.ConnectAsync(listen);
            await client.SendAsync(new byte[100], SocketFlags.None);
            client.Shutdown(SocketShutdown.Send);
            Assert.Equal(100, (await SocketIo.ReadToEndAsync(client).WaitAsync(Wait)).Bytes);
        }

        // At once, without waiting for any line: the lines still queued must be written at exit.
        relay.Signal(Signal.SIGTERM);
        Assert.Equal(0, await relay.WaitForExitAsync(Wait));

        var closed = relay.Stdout.Where(l => l.Contains("\"CircuitClosed\"")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(Circuits, closed.Select(j => j.GetProperty("CircuitId").GetInt64()).Distinct().Count());
        Assert.All(closed, j => Assert.Equal(100, j.GetProperty("BytesDown").GetInt64()));
        Assert.Contains(relay.Stdout, l => l.Contains("\"RelayStopped\""));
    }
}
