using System.Runtime.InteropServices;
using Relay.Actors;
using Relay.Actors.Dispatch;
using Relay.Host.Cli;
using Relay.Host.Logging;
using Relay.Host.Management;
using Serilog;
using Serilog.Core;
using Serilog.Events;

namespace Relay.Host.Hosting;

/// <summary>
/// <c>relay run</c>: one node in the foreground until SIGTERM or SIGINT. Problems that stop
/// the node from starting (a port in use, an endpoint that cannot be bound) are one line on
/// stderr and exit code 1; bad configuration never gets this far (exit 2 in the CLI).
/// </summary>
public static class RunCommand
{
    public const int ExitStartFailed = 1;

    public static async Task<int> RunAsync(RunRequest request, TextWriter stderr, CancellationToken cancellation)
    {
        var levelSwitch = new LoggingLevelSwitch(LogEventLevel.Information);
        await using var logger = RelayLogging.CreateLogger(request.LogFormat, levelSwitch, rollingFilePath: request.LogFile);
        Log.Logger = logger;
        var settings = request.Settings;

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
            return ExitStartFailed;
        }

        await using var stopNode = node;
        ManagementServer? management = null;
        if (settings.Management.Endpoint is { } endpoint)
        {
            try
            {
                management = await ManagementServer.StartAsync(endpoint,
                    new ManagementContext(node.Circuits, () => node.IsReady, node.NodeName, logger, settings.Management.Token, node),
                    cancellation);
            }
            catch (ManagementBindException e)
            {
                logger.Error("{EventName:l} {Problem:l}", "RelayStartFailed", e.Message);
                await stderr.WriteLineAsync($"relay: {e.Message}");
                return ExitStartFailed;
            }
        }

        await using (management)
        {
            logger.Information("{EventName:l} relay {Version:l} on {Node}: {RouteCount} route(s) on {Cores} core dispatcher(s), management {Management}",
                "RelayStarted", RelayCli.Version, node.NodeName, node.Routes.Length, settings.Dispatchers.Cores,
                management?.BaseAddress.ToString() ?? "off");

            var stop = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => Stop(context, "SIGTERM"));
            using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => Stop(context, "SIGINT"));
            using var onCancel = cancellation.Register(() => stop.TrySetResult("cancelled"));
            _ = node.System.WhenTerminated.ContinueWith(_ => stop.TrySetResult("actor system terminated"), TaskScheduler.Default);

            var reason = await stop.Task;
            if (CoreDispatchers.PinFailures > 0)
            {
                logger.Warning("{EventName:l} {PinFailures} core thread(s) could not be pinned to their CPU and ran unpinned",
                    "CorePinFailed", CoreDispatchers.PinFailures);
            }

            logger.Information("{EventName:l} relay stopping ({Reason:l}) with {Circuits} live circuit(s)",
                "RelayStopping", reason, node.Circuits.Count);

            void Stop(PosixSignalContext context, string signal)
            {
                // The node shuts down in order; the runtime must not exit under it.
                context.Cancel = true;
                stop.TrySetResult(signal);
            }
        }

        return 0;
    }
}
