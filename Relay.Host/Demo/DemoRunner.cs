using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Akka.Configuration;
using Relay.Actors;
using Relay.Actors.Configuration;

namespace Relay.Host.Demo;

/// <summary>
/// <c>relay demo</c>: a newcomer's first look. Starts a relay on the embedded default
/// config with a built-in echo upstream, drives traffic through it from several client
/// workers (each circuit sends a few MiB, reads them back and checks every byte), shows a
/// live progress line, and ends with a summary table. Exit code 0 only if every byte
/// came back intact.
/// </summary>
public static class DemoRunner
{
    private const int BytesPerCircuit = 4 * 1024 * 1024;

    public static async Task<int> RunAsync(RelaySettings defaults, Config akkaConfig, TimeSpan duration, int workers,
        TextWriter output, CancellationToken cancellation, IEnumerable<Akka.Actor.Setup.Setup>? setups = null)
    {
        await using var upstream = new EchoUpstream();
        var route = new RouteSettings("demo", new IPEndPoint(IPAddress.Loopback, 0),
            Relay.Actors.Upstreams.UpstreamPoolSettings.Single(new UpstreamAddress("127.0.0.1", upstream.Endpoint.Port)), Backlog: 1024,
            defaults.Defaults);
        var settings = defaults with { Routes = [route], Management = new ManagementSettings(null, "") };

        await using var node = await RelayNode.StartAsync(settings, akkaConfig, "demo", setups);
        var listen = node.EndpointOf("demo");
        output.WriteLine($"relay demo: {workers} client workers -> relay {listen} -> built-in echo upstream {upstream.Endpoint}, for {duration.TotalSeconds:0} s");
        output.WriteLine($"            {settings.Dispatchers.Cores} core dispatcher(s), write-size {Size(settings.Defaults.WriteSize)}, window {Size(settings.Defaults.Window)}");

        var stats = new DemoStats();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        stop.CancelAfter(duration);
        var clock = Stopwatch.StartNew();
        var running = Enumerable.Range(0, workers).Select(i => Task.Run(() => WorkerAsync(listen, i, stats, stop.Token))).ToArray();
        var interactive = !Console.IsOutputRedirected && ReferenceEquals(output, Console.Out);
        while (!Task.WhenAll(running).IsCompleted)
        {
            await Task.WhenAny(Task.WhenAll(running), Task.Delay(interactive ? 250 : 1000, CancellationToken.None));
            var line = $"  {clock.Elapsed.TotalSeconds,5:0.0} s  circuits {stats.Circuits,6}  live {node.Circuits.Count,3}  moved {Size(stats.Bytes),10}  {Rate(stats.Bytes, clock.Elapsed),12}";
            if (interactive)
            {
                output.Write("\r" + line);
            }
            else
            {
                output.WriteLine(line);
            }
        }

        if (interactive)
        {
            output.WriteLine();
        }

        var elapsed = clock.Elapsed;
        var failures = running.Where(t => t.IsFaulted).Select(t => t.Exception!.GetBaseException().Message).ToList();
        failures.AddRange(stats.Failures);

        output.WriteLine();
        output.WriteLine("  summary");
        output.WriteLine("  ------------------------------------------------");
        output.WriteLine($"  circuits completed        {stats.Circuits,16:N0}");
        output.WriteLine($"  bytes up (client->up)     {stats.Bytes / 2,16:N0}");
        output.WriteLine($"  bytes down (up->client)   {stats.Bytes / 2,16:N0}");
        output.WriteLine($"  throughput (both ways)    {Rate(stats.Bytes, elapsed),16}");
        output.WriteLine($"  integrity                 {(failures.Count == 0 && stats.Circuits > 0 ? "every byte echoed intact" : $"{failures.Count} failure(s)")}");
        output.WriteLine("  circuits per core:");
        for (var core = 0; core < node.Cores.Cores; core++)
        {
            output.WriteLine($"    core {core,-3}                 {node.Cores.TotalOn(core),16:N0}");
        }

        foreach (var failure in failures.Take(5))
        {
            output.WriteLine($"  failure: {failure}");
        }

        return failures.Count == 0 && stats.Circuits > 0 ? 0 : 1;
    }

    private static async Task WorkerAsync(IPEndPoint relay, int worker, DemoStats stats, CancellationToken stop)
    {
        var send = new byte[64 * 1024];
        var receive = new byte[64 * 1024];
        new Random(worker).NextBytes(send);
        while (!stop.IsCancellationRequested)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(relay, CancellationToken.None);
            // Read concurrently with writing: a relay with a bounded window would otherwise
            // (correctly) stall a client that writes everything before reading anything.
            var reading = ReadAndVerifyAsync(socket, send, receive);
            for (var sent = 0; sent < BytesPerCircuit; sent += send.Length)
            {
                await socket.SendAsync(send, SocketFlags.None);
            }

            socket.Shutdown(SocketShutdown.Send);
            var echoed = await reading;
            if (echoed != BytesPerCircuit)
            {
                stats.Fail($"worker {worker}: {echoed} of {BytesPerCircuit} bytes came back");
                return;
            }

            stats.Completed(2L * BytesPerCircuit);
        }
    }

    private static async Task<long> ReadAndVerifyAsync(Socket socket, byte[] expected, byte[] buffer)
    {
        long total = 0;
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None);
            if (n == 0)
            {
                return total;
            }

            for (var i = 0; i < n; i++)
            {
                if (buffer[i] != expected[(total + i) % expected.Length])
                {
                    throw new InvalidDataException($"byte {total + i} differs from what was sent");
                }
            }

            total += n;
        }
    }

    private static string Size(long bytes) => ByteUnits.Symbols.Rounded(bytes, "0", "0.0", "0.00");

    private static string Rate(long bytes, TimeSpan elapsed) =>
        (bytes * 8 / Math.Max(elapsed.TotalSeconds, 0.001) / 1e9).ToString("0.00", CultureInfo.InvariantCulture) + " Gbit/s";

    private sealed class DemoStats
    {
        private long _bytes;
        private long _circuits;

        public long Bytes => Volatile.Read(ref _bytes);

        public long Circuits => Volatile.Read(ref _circuits);

        public List<string> Failures { get; } = new();

        public void Completed(long bytes)
        {
            Interlocked.Add(ref _bytes, bytes);
            Interlocked.Increment(ref _circuits);
        }

        public void Fail(string problem)
        {
            lock (Failures)
            {
                Failures.Add(problem);
            }
        }
    }

    /// <summary>The built-in upstream: echoes each connection's bytes and its FIN.</summary>
    private sealed class EchoUpstream : IAsyncDisposable
    {
        private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;

        public EchoUpstream()
        {
            _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _listener.Listen(1024);
            _loop = Task.Run(AcceptAsync);
        }

        public IPEndPoint Endpoint => (IPEndPoint)_listener.LocalEndPoint!;

        private async Task AcceptAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                Socket socket;
                try
                {
                    socket = await _listener.AcceptAsync(_stop.Token);
                }
                catch (Exception) when (_stop.IsCancellationRequested)
                {
                    return;
                }

                _ = Task.Run(async () =>
                {
                    using (socket)
                    {
                        var buffer = new byte[64 * 1024];
                        try
                        {
                            int n;
                            while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None)) > 0)
                            {
                                await socket.SendAsync(buffer.AsMemory(0, n), SocketFlags.None);
                            }

                            socket.Shutdown(SocketShutdown.Send);
                        }
                        catch (SocketException)
                        {
                            // The demo is ending and the relay reset the circuit: nothing to echo.
                        }
                    }
                });
            }
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            _listener.Dispose();
            await _loop;
        }
    }
}
