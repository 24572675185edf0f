using System.Runtime.InteropServices;
using Akka.Actor;
using Relay.Actors;
using Relay.Actors.Dispatch;
using Relay.Actors.Logging;
using Relay.Host.Cli;
using Relay.Host.Logging;
using Relay.Host.Management;
using Serilog;
using Serilog.Core;
using Serilog.Events;

namespace Relay.Host.Hosting;

/// <summary>
/// <c>relay run</c>: one node in the foreground until SIGTERM or SIGINT, which stop it
/// gracefully (<see cref="RelayNode.ShutdownAsync"/>; a second signal cuts the grace short).
/// SIGHUP reloads the config files and flags, also when the relay was started with SIGHUP
/// ignored (nohup; see <see cref="InheritedSignals"/>). Problems that stop
/// the node from starting (a port in use, an endpoint that cannot be bound) are one line on
/// stderr and exit code 1; bad configuration never gets this far (exit 2 in the CLI). The
/// exit code is always the one Akka's shutdown line in the log names (<see cref="RelayShutdownReason"/>).
/// </summary>
public static class RunCommand
{
    public static async Task<int> RunAsync(RunRequest request, TextWriter stderr, CancellationToken cancellation)
    {
        var levelSwitch = new LoggingLevelSwitch(LogEventLevel.Information);
        await using var logger = RelayLogging.CreateLogger(request.LogFormat, levelSwitch, rollingFilePath: request.LogFile);
        Log.Logger = logger;
        var settings = request.Settings;

        // Signals are caught before the node starts: a SIGTERM that lands while routes are
        // binding must still mean "drain and exit 0", not the runtime's default death.
        var stop = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var hurry = new CancellationTokenSource();
        ConfigReloader? reloader = null;
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => Stop(context, "SIGTERM"));
        using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => Stop(context, "SIGINT"));
        InheritedSignals.StopIgnoring(InheritedSignals.SigHup); // started under nohup, SIGHUP still reloads
        using var onHup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
        {
            context.Cancel = true; // SIGHUP's default action would end the process
            if (Volatile.Read(ref reloader) is { } ready)
            {
                _ = ready.ReloadAsync("SIGHUP");
            }
        });

        RelayNode node;
        try
        {
            node = await RelayNode.StartAsync(settings, request.FullConfig.WithFallback(RelayLogging.AkkaConfig),
                setups: [new RelayLoggingSetup(logger, levelSwitch)]);
        }
        catch (RelayStartException e)
        {
            // The guardian has already logged the event (ListenerBindFailed); the operator's
            // terminal gets the one line.
            await stderr.WriteLineAsync($"relay: {e.Message}");
            return RelayShutdownReason.StartFailed.ExitCode;
        }

        await using var stopNode = node;
        try
        {
            Volatile.Write(ref reloader, new ConfigReloader(node, request.Reread, logger));
            ManagementServer? management = null;
            if (settings.Management.Endpoint is { } endpoint)
            {
                try
                {
                    management = await ManagementServer.StartAsync(endpoint,
                        new ManagementContext(node.Circuits, () => node.IsReady, node.NodeName, logger, settings.Management.Token, node,
                            reloader!.ReloadAsync),
                        cancellation);
                }
                catch (ManagementBindException e)
                {
                    RelayEvents.RelayStartFailed.Log(logger, e.Message);
                    await stderr.WriteLineAsync($"relay: {e.Message}");
                    return await ShutDownAsync(node, RelayShutdownReason.StartFailed);
                }
            }

            await using (management)
            {
                RelayEvents.RelayStarted.Log(logger, RelayCli.Version, node.NodeName, node.Routes.Length, settings.Dispatchers.Cores,
                    management?.BaseAddress.ToString() ?? "off");

                using var onCancel = cancellation.Register(() => stop.TrySetResult("cancelled"));
                _ = node.System.WhenTerminated.ContinueWith(_ => stop.TrySetResult("actor system terminated"), TaskScheduler.Default);

                var reason = await stop.Task;
                if (CoreDispatchers.PinFailures > 0)
                {
                    RelayEvents.CorePinFailed.Log(logger, CoreDispatchers.PinFailures);
                }

                var grace = node.Settings.ShutdownGrace;
                RelayEvents.RelayStopping.Log(logger, reason, node.Circuits.Count, grace.TotalSeconds);
                if (!node.System.WhenTerminated.IsCompleted)
                {
                    var summary = await node.ShutdownAsync(grace, hurry.Token);
                    RelayEvents.RelayStopped.Log(logger, summary.Finished, summary.OpenAtClose, summary.Reset,
                        summary.Reset == 0 ? "none left" : summary.GraceRanOut ? "the shutdown grace ran out" : "a second signal",
                        (long)summary.Duration.TotalMilliseconds);
                }
            }

            // A system that shut itself down (a cluster node downed, or unable to join) has
            // logged its reason's exit code (3 and 4 for those); the process exits with it.
            // After a signal no shutdown has run yet: the node's disposal runs it, with 0.
            return CoordinatedShutdown.Get(node.System).ShutdownReason?.ExitCode ?? 0;
        }
        catch
        {
            await ShutDownAsync(node, RelayShutdownReason.Failed);
            throw;
        }

        void Stop(PosixSignalContext context, string signal)
        {
            // The node shuts down in order; the runtime must not exit under it. A second
            // signal while the first is draining means "now": the grace is cut short.
            context.Cancel = true;
            if (!stop.TrySetResult(signal))
            {
                hurry.Cancel();
            }
        }
    }

    /// <summary>
    /// Shuts the node down for <paramref name="reason"/> and returns its exit code. Akka's last
    /// line names the reason and the code; without this, the node's disposal would run the
    /// shutdown of a normal stop, whose code is 0.
    /// </summary>
    private static async Task<int> ShutDownAsync(RelayNode node, RelayShutdownReason reason)
    {
        await CoordinatedShutdown.Get(node.System).Run(reason);
        return reason.ExitCode;
    }
}
