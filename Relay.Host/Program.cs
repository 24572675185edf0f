using Relay.Host.Cli;
using Relay.Host.Hosting;

// Before anything else: the GC's gen0 budget can only be set through the environment the
// runtime started with, so this may replace the process with itself (same PID). See GcBudget.
GcBudget.ApplyByReexecIfNeeded();

// The relay's entry point: the CLI parses and validates, the Hosting commands run.
// Nothing escapes as a stack trace: an unexpected failure is one line and exit code 1.
try
{
    var handlers = new RelayCliHandlers(
        Run: (request, ct) => RunCommand.RunAsync(request, Console.Error, ct),
        Demo: (request, ct) => DemoCommand.RunAsync(request, Console.Out, ct),
        Status: (request, ct) => ManagementClientCommands.StatusAsync(request, Console.Out, Console.Error, ct),
        Circuits: (request, ct) => ManagementClientCommands.CircuitsAsync(request, Console.Out, Console.Error, ct),
        Handover: (request, ct) => ManagementClientCommands.HandoverAsync(request, Console.Out, Console.Error, ct));
    return await RelayCli.InvokeAsync(args, handlers, Console.Out, Console.Error);
}
catch (Exception e)
{
    Console.Error.WriteLine($"relay: unexpected error: {e.GetBaseException().Message}");
    return 1;
}
