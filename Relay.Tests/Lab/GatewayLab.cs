using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Relay.Tests.Support;
using static Relay.Tests.Support.ExternalProcess;

namespace Relay.Tests.Lab;

/// <summary>
/// One lab (ops/lab/lab.sh) with a unique namespace prefix for the gateway tests: brings it
/// up, runs the built relay and python peers inside it, reads counters, and tears it all down
/// on dispose, failed test or not. Every wait is bounded.
/// </summary>
internal sealed class GatewayLab : IAsyncDisposable
{
    public static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(60);

    private readonly List<Process> _processes = [];
    private readonly StringBuilder _relayLog = new();
    private readonly string _labScript;
    private readonly List<string> _files = [];

    private GatewayLab(string labScript, string prefix)
    {
        _labScript = labScript;
        Prefix = prefix;
    }

    public string Prefix { get; }

    public string RelayLog
    {
        get
        {
            lock (_relayLog)
            {
                return _relayLog.ToString();
            }
        }
    }

    /// <summary>`lab.sh up` with <paramref name="upArgs"/>; the lab is torn down on dispose even if this fails.</summary>
    public static async Task<GatewayLab> UpAsync(params string[] upArgs)
    {
        var lab = new GatewayLab(FindInRepo("ops/lab/lab.sh"), $"rlt{Environment.ProcessId % 100000}x{Random.Shared.Next(1000, 9999)}g-");
        var up = await RunAsync(lab._labScript, ["up", .. upArgs], lab.Env, TimeSpan.FromSeconds(180));
        Assert.True(up.Exit == 0, $"lab.sh up {string.Join(' ', upArgs)} failed ({up.Exit}):\n{up.Output}");
        return lab;
    }

    private Dictionary<string, string> Env => new() { ["LAB_PREFIX"] = Prefix };

    /// <summary>Starts the built relay in `relay` with <paramref name="hocon"/> and waits until it listens on <paramref name="port"/>.</summary>
    public async Task StartRelayAsync(string hocon, int port)
    {
        var relayDll = Path.Combine(AppContext.BaseDirectory, "relay.dll");
        Assert.True(File.Exists(relayDll), $"relay.dll not in the test output ({relayDll})");
        var conf = Path.Combine(Path.GetTempPath(), $"{Prefix}relay.conf");
        File.WriteAllText(conf, "akka.loglevel = INFO\n" + hocon);
        _files.Add(conf);
        var relay = Start(Ns("relay"), DotnetHost(), relayDll, "run", "--config", conf, "--management", "127.0.0.1:8558");
        CaptureLines(relay, _relayLog);
        await AwaitListeningAsync(Ns("relay"), port, relay, StepTimeout, () => RelayLog);
    }

    /// <summary>Starts python3 <paramref name="script"/> in namespace <paramref name="ns"/> (cli, relay or srv).</summary>
    public Process Python(string ns, string script, params string[] args) =>
        Start(Ns(ns), "python3", ["-c", script, .. args]);

    /// <summary>Runs python3 to completion in <paramref name="ns"/>.</summary>
    public Task<RunResult> RunPythonAsync(string ns, string script, params string[] args) =>
        RunAsync("ip", ["netns", "exec", Ns(ns), "python3", "-c", script, .. args], null, StepTimeout);

    /// <summary>GET on the relay's management API, from inside `relay`.</summary>
    public async Task<JsonDocument> GetJsonAsync(string path)
    {
        var r = await RunPythonAsync("relay",
            "import sys, urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8558' + sys.argv[1], timeout=10).read().decode())", path);
        Assert.True(r.Exit == 0, $"GET {path} failed: {r.Output}");
        return JsonDocument.Parse(r.Stdout);
    }

    /// <summary>Bytes and packets cli has sent on its link to the relay.</summary>
    public async Task<(long Bytes, long Packets)> CliTxAsync()
    {
        var r = await RunAsync("ip", ["-n", Ns("cli"), "-s", "-j", "link", "show", "c-r"], null, TimeSpan.FromSeconds(10));
        Assert.True(r.Exit == 0, $"reading cli counters failed: {r.Output}");
        using var doc = JsonDocument.Parse(r.Stdout);
        var tx = doc.RootElement[0].GetProperty("stats64").GetProperty("tx");
        return (tx.GetProperty("bytes").GetInt64(), tx.GetProperty("packets").GetInt64());
    }

    /// <summary>The next stdout line of <paramref name="p"/>, trimmed, or a note at its end or if none comes in time.</summary>
    public static async Task<string> ReadLineAsync(Process p, TimeSpan? timeout = null) =>
        await ExternalProcess.ReadLineAsync(p, timeout ?? StepTimeout) ?? "(end of output)";

    public async ValueTask DisposeAsync()
    {
        foreach (var p in _processes)
        {
            Stop(p);
        }

        await RunAsync(_labScript, ["down"], Env, TimeSpan.FromSeconds(60));
        foreach (var file in _files)
        {
            File.Delete(file);
        }
    }

    private string Ns(string which) => Prefix + which;

    private Process Start(string ns, string file, params string[] args)
    {
        var p = ExternalProcess.Start("ip", ["netns", "exec", ns, file, .. args]);
        _processes.Add(p);
        return p;
    }
}
