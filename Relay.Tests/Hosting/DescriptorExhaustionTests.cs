using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Relay.Actors.Circuits.ProxyProtocol;
using Relay.Actors.Listening;
using Relay.Tests.Support;

namespace Relay.Tests.Hosting;

/// <summary>
/// The real relay executable under a low RLIMIT_NOFILE: running out of descriptors pauses
/// accepting (logged once), costs no CPU while it lasts, and accepting resumes on its own when
/// descriptors are freed; the process never dies of it.
/// </summary>
public sealed class DescriptorExhaustionTests
{
    // The .NET runtime and the relay hold about 125 descriptors once started (assemblies,
    // epoll and eventfds per core, pipes); 200 leaves room for a few dozen connections.
    private const int FileLimit = 200;
    private const int MaxHeld = 150; // bounds the loop: more than the limit can ever hold
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Running_out_of_descriptors_pauses_accepting_then_resumes_when_they_are_freed()
    {
        await using var server = new TestServer(TestServer.Echo);
        // An accept-proxy-protocol route: each client that has not sent its header yet holds
        // exactly one descriptor and no upstream socket, so the relay fills up one by one
        // and the descriptor that runs out is the one accept4 needs.
        var config = Path.Combine(Path.GetTempPath(), $"relay-emfile-{Environment.ProcessId}-{Guid.NewGuid():N}.conf");
        await File.WriteAllTextAsync(config, $$"""
            relay.routes = [ { name = "full", listen = "127.0.0.1:0", upstream = "{{server.Endpoint}}",
                               accept-proxy-protocol = on, proxy-header-timeout = 5m } ]
            relay.dispatchers.cores = 2
            """);
        var held = new List<Socket>();
        try
        {
            using var relay = RelayProcess.StartWithFileLimit(FileLimit, "run", "--config", config, "--management", "off", "--log-format", "json");
            var bound = JsonDocument.Parse(await relay.WaitForLineAsync(l => l.Contains("\"ListenerBound\""), Wait)).RootElement;
            var listen = IPEndPoint.Parse(bound.GetProperty("Listen").GetString()!);

            // One whole circuit first, so everything the relay loads lazily is loaded.
            await AssertGoodClientGetsThroughAsync(listen);

            for (var i = 0; i < MaxHeld && !relay.Stdout.Any(IsPaused); i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                held.Add(socket);
                await socket.ConnectAsync(listen); // completes from the backlog even once paused
                await Task.Delay(5); // paced, so the relay accepts (and logs its pause) as the test goes
            }

            await relay.WaitForLineAsync(IsPaused, Wait);
            Assert.False(relay.HasExited);

            // Paused, the relay waits on a timer: it neither spins nor logs per attempt. (The
            // first moments after the pause still carry the burst's work, so they are skipped.)
            await Task.Delay(TimeSpan.FromSeconds(1.5));
            // The reserve was given back: the runtime has headroom (without it, a full table
            // made the runtime die with "Out of memory." when it next needed a descriptor).
            var open = Directory.GetFileSystemEntries($"/proc/{relay.Id}/fd").Length;
            Assert.True(open <= FileLimit - DescriptorReserve.Size / 2,
                $"the paused relay holds {open} of {FileLimit} descriptors: no headroom was given back");
            var cpuBefore = CpuSeconds(relay);
            await Task.Delay(TimeSpan.FromSeconds(2));
            var cpu = CpuSeconds(relay) - cpuBefore;
            // Measured here: 0.13-0.16 s (tier-1 JIT of the burst's hot methods); a spinning
            // acceptor would burn most of the 2 s.
            Assert.True(cpu <= 0.5, $"the paused relay used {cpu:0.00} CPU-seconds in 2 s");
            Assert.Single(relay.Stdout, IsPaused);

            // Free every held connection: the relay must accept again without any help.
            held.ForEach(SocketIo.Abort);
            held.Clear();
            await relay.WaitForLineAsync(l => l.Contains("\"AcceptResumed\""), Wait);
            await AssertGoodClientGetsThroughAsync(listen);
            Assert.False(relay.HasExited);
            Assert.Empty(relay.Stderr);
        }
        finally
        {
            held.ForEach(s => s.Dispose());
            File.Delete(config);
        }
    }

    private static bool IsPaused(string line) => line.Contains("\"AcceptPaused\"") && line.Contains("TooManyOpenSockets");

    private static async Task AssertGoodClientGetsThroughAsync(IPEndPoint listen)
    {
        using var client = await SocketIo.ConnectAsync(listen);
        var header = ProxyHeaderWriter.Build(ProxyProtocolVersion.V1, new IPEndPoint(IPAddress.Parse("198.18.0.7"), 7), listen);
        await client.SendAsync(header.Concat("ok"u8.ToArray()).ToArray(), SocketFlags.None);
        Assert.Equal("ok"u8.ToArray(), await SocketIo.ReadExactlyAsync(client, 2).WaitAsync(Wait));
        client.Shutdown(SocketShutdown.Send);
        await SocketIo.ReadToEndAsync(client).WaitAsync(Wait);
    }

    /// <summary>utime + stime of the process, from /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s).</summary>
    private static double CpuSeconds(RelayProcess relay)
    {
        Assert.False(relay.HasExited, $"the relay died; stderr: {string.Join('\n', relay.Stderr)}; stdout: {string.Join('\n', relay.Stdout.TakeLast(5))}");
        var stat = File.ReadAllText($"/proc/{relay.Id}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }
}
