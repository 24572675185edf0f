using System.Diagnostics;
using Relay.Actors.Configuration;

namespace Relay.Actors.Cluster;

/// <summary>
/// Adds and removes the virtual IP with iproute2 and announces it with a gratuitous ARP
/// (iputils arping -U), so neighbours update their caches at once instead of after their
/// ARP entries go stale. Linux sends no gratuitous ARP for <c>ip addr add</c> by itself.
/// </summary>
public sealed class VipController
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(5);

    public VipController(VirtualIp vip, string device)
    {
        Vip = vip;
        Device = device;
    }

    public VirtualIp Vip { get; }

    public string Device { get; }

    /// <summary><c>ip addr replace</c>: idempotent, so a VIP already present is not an error.</summary>
    public Task<CommandResult> AddAsync() => RunAsync("ip", ["addr", "replace", Vip.ToString(), "dev", Device]);

    /// <summary><c>ip addr del</c>; "not present" counts as success.</summary>
    public async Task<CommandResult> RemoveAsync()
    {
        var result = await RunAsync("ip", ["addr", "del", Vip.ToString(), "dev", Device]).ConfigureAwait(false);
        return result.Ok || result.Output.Contains("Cannot assign requested address", StringComparison.Ordinal)
            || result.Output.Contains("Address not found", StringComparison.Ordinal)
            ? result with { Ok = true }
            : result;
    }

    /// <summary>
    /// Sends gratuitous ARPs for the VIP (IPv4 only; IPv6 neighbours learn it from the
    /// unsolicited advertisement the kernel sends after DAD). The first goes out at once;
    /// two more follow a second apart without holding the caller up, for a peer that
    /// missed the first.
    /// </summary>
    public CommandResult Announce()
    {
        if (Vip.Address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
        {
            return new CommandResult(true, "");
        }

        try
        {
            var start = new ProcessStartInfo("arping")
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            foreach (var arg in new[] { "-U", "-c", "3", "-I", Device, Vip.Address.ToString() })
            {
                start.ArgumentList.Add(arg);
            }

            var process = Process.Start(start);
            if (process is null)
            {
                return new CommandResult(false, "arping did not start");
            }

            // Reap it in the background; its output only matters when it fails.
            _ = process.WaitForExitAsync().ContinueWith(_ => process.Dispose(), TaskScheduler.Default);
            return new CommandResult(true, "");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return new CommandResult(false, $"arping not found ({e.Message}); install iputils-arping, or neighbours learn the VIP only when their ARP entry expires");
        }
    }

    private static async Task<CommandResult> RunAsync(string file, string[] args)
    {
        try
        {
            var start = new ProcessStartInfo(file)
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            foreach (var arg in args)
            {
                start.ArgumentList.Add(arg);
            }

            using var process = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start");
            using var timeout = new CancellationTokenSource(CommandTimeout);
            var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
            var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
            var output = ((await stdout.ConfigureAwait(false)) + (await stderr.ConfigureAwait(false))).Trim().ReplaceLineEndings(" ");
            return new CommandResult(process.ExitCode == 0, $"{file} {string.Join(' ', args)}: {(output.Length == 0 ? $"exit {process.ExitCode}" : output)}");
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or OperationCanceledException)
        {
            return new CommandResult(false, $"{file} {string.Join(' ', args)}: {e.Message}");
        }
    }
}

/// <summary>What a VIP command did; <see cref="Output"/> is one line for the log.</summary>
public sealed record CommandResult(bool Ok, string Output);
