using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Relay.Tests.Support;
using Xunit.Abstractions;
using static Relay.Tests.Support.ExternalProcess;

namespace Relay.Tests.Lab;

/// <summary>
/// The lab smoke test: the seeds' scenario end to end. ops/lab/lab.sh builds
/// cli (MTU 65520) -> relay -> srv (MTU 1500) in namespaces of its own; the built relay
/// runs in `relay`, a sender in `cli` pushes 64 MiB of deterministic data through it to
/// a receiver in `srv` that hashes it. The data must arrive intact, and cli must have
/// sent big packets (the relay's point: on average more than 30,000 bytes per packet,
/// where routed it would be ~1,500).
/// </summary>
public sealed class LabSmokeTests
{
    private const long Total = 64L << 20;
    private const string RelayNear = "198.18.1.2";
    private const string Srv = "198.18.2.2";
    private const int RelayPort = 7001;
    private const int SrvPort = 9100;
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(60);

    private readonly ITestOutputHelper _out;

    public LabSmokeTests(ITestOutputHelper output) => _out = output;

    private const string ReceiverPy = """
        import hashlib, socket
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("198.18.2.2", 9100)); s.listen(1); s.settimeout(60)
        print("listening", flush=True)
        c, _ = s.accept(); c.settimeout(60)
        h = hashlib.sha256(); n = 0
        while True:
            b = c.recv(1 << 20)
            if not b: break
            h.update(b); n += len(b)
        c.close()
        print(h.hexdigest(), n, flush=True)
        """;

    private const string SenderPy = """
        import hashlib, socket
        total = 64 << 20; chunk = 1 << 18
        h = hashlib.sha256(); sent = 0; i = 0
        s = socket.create_connection(("198.18.1.2", 7001), timeout=30)
        while sent < total:
            block = hashlib.sha256(i.to_bytes(8, "big")).digest() * (chunk // 32)
            s.sendall(block); h.update(block); sent += len(block); i += 1
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536): pass
        s.close()
        print(h.hexdigest(), sent, flush=True)
        """;

    [RootLabFact]
    public async Task Relays_64MiB_from_cli_to_srv_intact_with_jumbo_client_packets()
    {
        var labScript = FindInRepo("ops/lab/lab.sh");
        var relayDll = Path.Combine(AppContext.BaseDirectory, "relay.dll");
        Assert.True(File.Exists(relayDll), $"relay.dll not in the test output ({relayDll})");

        var prefix = $"rlt{Environment.ProcessId % 100000}x{Random.Shared.Next(1000, 9999)}-";
        var env = new Dictionary<string, string> { ["LAB_PREFIX"] = prefix };
        var conf = Path.Combine(Path.GetTempPath(), $"{prefix}relay.conf");
        File.WriteAllText(conf, "akka.loglevel = INFO\n"); // one line per circuit: the reason shows on failure
        Process? receiver = null, relay = null;
        var relayLog = new StringBuilder();
        try
        {
            var up = await RunAsync(labScript, ["up"], env, TimeSpan.FromSeconds(180));
            _out.WriteLine(up.Output);
            Assert.True(up.Exit == 0, $"lab.sh up failed ({up.Exit}):\n{up.Output}");

            receiver = Start("ip", ["netns", "exec", prefix + "srv", "python3", "-c", ReceiverPy]);
            var listening = await ReadLineAsync(receiver, StepTimeout);
            // (Never await the receiver's stderr here: it ends only when the receiver exits.)
            Assert.True(listening == "listening", $"receiver in srv did not start: '{listening}'");

            relay = Start("ip", ["netns", "exec", prefix + "relay", DotnetHost(), relayDll, "run",
                "--route", $"smoke@{RelayNear}:{RelayPort}={Srv}:{SrvPort}", "--management", "off", "--config", conf]);
            CaptureLines(relay, relayLog);
            await AwaitListeningAsync(prefix + "relay", RelayPort, relay, StepTimeout, () =>
            {
                lock (relayLog) return relayLog.ToString();
            });

            var (bytes0, packets0) = await CliTxAsync(prefix);
            var send = await RunAsync("ip", ["netns", "exec", prefix + "cli", "python3", "-c", SenderPy], null, StepTimeout);
            var (bytes1, packets1) = await CliTxAsync(prefix);
            Assert.True(send.Exit == 0, $"sender failed ({send.Exit}):\n{send.Output}\nrelay log:\n{relayLog}");

            var received = await ReadLineAsync(receiver, StepTimeout);
            var sent = send.Stdout.Trim().Split('\n').Last().Trim();
            _out.WriteLine($"sent:     {sent}");
            _out.WriteLine($"received: {received}");
            var sentParts = sent.Split(' ');
            Assert.Equal(2, sentParts.Length);
            Assert.Equal(Total.ToString(), sentParts[1]);
            Assert.Equal(sent, received);

            var bytesPerPacket = (double)(bytes1 - bytes0) / Math.Max(1, packets1 - packets0);
            _out.WriteLine($"cli sent {bytes1 - bytes0:N0} bytes in {packets1 - packets0:N0} packets: {bytesPerPacket:N0} bytes per packet");
            Assert.True(bytesPerPacket > 30_000,
                $"cli sent {bytesPerPacket:N0} bytes per packet on average; through the relay it should be > 30,000 (MTU 65520)");
        }
        finally
        {
            Stop(relay);
            Stop(receiver);
            if (relay is not null)
                _out.WriteLine("relay log:\n" + relayLog);
            var down = await RunAsync(labScript, ["down"], env, TimeSpan.FromSeconds(60));
            _out.WriteLine(down.Output);
            File.Delete(conf);
        }
    }

    private static async Task<(long Bytes, long Packets)> CliTxAsync(string prefix)
    {
        var r = await RunAsync("ip", ["-n", prefix + "cli", "-s", "-j", "link", "show", "c-r"], null, TimeSpan.FromSeconds(10));
        Assert.True(r.Exit == 0, $"reading cli counters failed: {r.Output}");
        using var doc = JsonDocument.Parse(r.Stdout);
        var tx = doc.RootElement[0].GetProperty("stats64").GetProperty("tx");
        return (tx.GetProperty("bytes").GetInt64(), tx.GetProperty("packets").GetInt64());
    }
}
