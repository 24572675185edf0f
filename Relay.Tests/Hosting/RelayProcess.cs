using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Relay.Tests.Support;

namespace Relay.Tests.Hosting;

/// <summary>
/// The real <c>relay</c> executable as a child process (relay.dll is copied next to the
/// tests because Relay.Tests references Relay.Host). Collects stdout and stderr by line.
/// </summary>
internal sealed class RelayProcess : IDisposable
{
    private readonly Process _process;
    private readonly List<string> _stdout = new();
    private readonly List<string> _stderr = new();

    /// <param name="launcher">A program and its arguments that execs <c>dotnet</c> in its own process (prlimit, nohup).</param>
    private RelayProcess(string[] args, string[]? launcher = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        // The launcher execs dotnet, so the relay keeps the launcher's pid.
        var start = new ProcessStartInfo(launcher is { Length: > 0 } ? launcher[0] : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
        };
        if (launcher is { Length: > 0 })
        {
            foreach (var arg in launcher[1..])
            {
                start.ArgumentList.Add(arg);
            }

            start.ArgumentList.Add("dotnet");
        }

        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "relay.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => Add(_stdout, e.Data);
        _process.ErrorDataReceived += (_, e) => Add(_stderr, e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public static RelayProcess Start(params string[] args) => new(args);

    /// <summary>Starts the relay with at most <paramref name="fileLimit"/> open descriptors (RLIMIT_NOFILE).</summary>
    public static RelayProcess StartWithFileLimit(int fileLimit, params string[] args) =>
        new(args, ["prlimit", $"--nofile={fileLimit}:{fileLimit}"]);

    /// <summary>Starts the relay under coreutils' <c>nohup</c>: SIGHUP ignored, as the relay inherits it.</summary>
    public static RelayProcess StartUnderNohup(params string[] args) => new(args, ["nohup"]);

    /// <summary>Starts the relay with <paramref name="environment"/> added to the test's own.</summary>
    public static RelayProcess StartWithEnvironment(IReadOnlyDictionary<string, string> environment, params string[] args) =>
        new(args, environment: environment);

    /// <summary>The running relay's environment, as the kernel holds it (/proc/PID/environ).</summary>
    public IReadOnlyDictionary<string, string> Environment() =>
        File.ReadAllText($"/proc/{Id}/environ").Split('\0', StringSplitOptions.RemoveEmptyEntries)
            .Select(entry => entry.Split('=', 2))
            .GroupBy(pair => pair[0])
            .ToDictionary(g => g.Key, g => g.Last().Length > 1 ? g.Last()[1] : "");

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public string[] Stdout
    {
        get
        {
            lock (_stdout)
            {
                return _stdout.ToArray();
            }
        }
    }

    public string[] Stderr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToArray();
            }
        }
    }

    /// <summary>Runs to completion and returns the exit code.</summary>
    public static async Task<(int ExitCode, string[] Stdout, string[] Stderr)> RunAsync(TimeSpan timeout, params string[] args)
    {
        using var process = Start(args);
        var code = await process.WaitForExitAsync(timeout);
        return (code, process.Stdout, process.Stderr);
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        _process.WaitForExit(); // flushes the redirected streams
        return _process.ExitCode;
    }

    /// <summary>Waits for a stdout line that satisfies <paramref name="match"/>.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, TimeSpan timeout)
    {
        string? line = null;
        await Eventually.Holds(() => (line = Stdout.FirstOrDefault(match)) is not null || _process.HasExited, "a matching line", timeout,
            state: Output, every: TimeSpan.FromMilliseconds(50));
        return line ?? throw new InvalidOperationException($"the relay exited without a matching line; {Output()}");
    }

    private string Output() => $"stdout: {string.Join('\n', Stdout)}; stderr: {string.Join('\n', Stderr)}";

    public void Signal(int signal)
    {
        if (Native.Signal.Kill(_process.Id, signal) != 0)
        {
            throw new InvalidOperationException($"kill({_process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        _process.Dispose();
    }

    private static void Add(List<string> lines, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (lines)
        {
            lines.Add(line);
        }
    }
}
