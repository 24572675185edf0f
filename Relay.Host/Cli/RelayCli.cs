using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Reflection;
using Relay.Actors.Configuration;
using Relay.Host.Logging;

namespace Relay.Host.Cli;

/// <summary>
/// The <c>relay</c> command line (<c>relay --help</c>, and README "Quick start"). Parses and validates the
/// arguments and the configuration, then calls the host's <see cref="RelayCliHandlers"/>.
/// A usage or configuration error is one line on stderr, <c>relay: KEY = "VALUE": PROBLEM</c>,
/// with exit code <see cref="ExitUsage"/> and never a stack trace.
/// </summary>
public static class RelayCli
{
    public const int ExitOk = 0;

    /// <summary>Bad arguments or configuration (the BSD EX_USAGE convention of 2 that most CLIs share).</summary>
    public const int ExitUsage = 2;

    private static readonly string[] CircuitStates = ["connecting", "established", "half-closed", "closed", "lost"];

    /// <summary>
    /// Runs the command line. Exceptions thrown by <paramref name="handlers"/> propagate to the
    /// caller, except <see cref="RelayConfigException"/>, which is reported as a usage error.
    /// </summary>
    public static async Task<int> InvokeAsync(
        string[] args,
        RelayCliHandlers handlers,
        TextWriter stdout,
        TextWriter stderr,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(handlers);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);

        var root = BuildRoot(handlers, stdout, stderr);
        var parse = root.Parse(args);
        if (parse.Action is ParseErrorAction)
        {
            await stderr.WriteLineAsync($"relay: {Describe(parse.Errors)} (see relay --help)");
            return ExitUsage;
        }

        var invocation = new InvocationConfiguration
        {
            Output = stdout,
            Error = stderr,
            EnableDefaultExceptionHandler = false,
        };
        if (parse.CommandResult.Command.Name == "run")
        {
            // System.CommandLine would answer SIGTERM/SIGINT itself by cancelling the command
            // and, 2 s later, exiting with 143: that would cut `relay run`'s shutdown grace.
            // The run command handles its signals itself (RunCommand); the others keep it.
            invocation.ProcessTerminationTimeout = null;
        }

        return await parse.InvokeAsync(invocation, cancellationToken);
    }

    /// <summary>The informational version of the relay (the assembly's, e.g. 0.1.0+commit).</summary>
    public static string Version =>
        typeof(RelayCli).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(RelayCli).Assembly.GetName().Version?.ToString()
        ?? "unknown";

    private static RootCommand BuildRoot(RelayCliHandlers handlers, TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand("Relay: a userland TCP relay appliance. Each accepted connection is carried over a second, independently tuned TCP connection.");
        foreach (var option in root.Options)
        {
            if (option is VersionOption)
            {
                // The default prints the entry assembly's version, which is the test host's
                // under a test runner: print the relay's own.
                option.Action = new PrintVersion();
            }
        }

        root.Add(RunCommand(handlers, stderr));
        root.Add(DemoCommand(handlers, stderr));
        root.Add(CheckConfigCommand(stdout, stderr));
        root.Add(StatusCommand("status", "Show the node's readiness and one row per route (state, circuits, bytes) from the management API.", handlers.Status, withFilters: false, stderr));
        root.Add(StatusCommand("circuits", "List circuits from the management API as a table.", handlers.Circuits, withFilters: true, stderr));
        if (handlers.Handover is { } handover)
        {
            root.Add(HandoverCommand(handover, stderr));
        }
        return root;
    }

    private static Command RunCommand(RelayCliHandlers handlers, TextWriter stderr)
    {
        var config = new Option<string[]>("--config")
        {
            Description = "HOCON config file; repeatable, later files override earlier ones.",
            HelpName = "FILE",
        };
        var route = new Option<string[]>("--route")
        {
            Description = "Port-forward route [NAME@]LISTEN=UPSTREAM[,UPSTREAM...], e.g. web@0.0.0.0:8080=198.18.1.2:80 (several upstreams make a pool); repeatable, added to the routes of the files.",
            HelpName = "SPEC",
        };
        var transparent = new Option<string[]>("--transparent")
        {
            Description = "Transparent gateway route [NAME@]LISTEN, e.g. gw@0.0.0.0:15001: relays each intercepted (REDIRECT) connection to its original destination; repeatable.",
            HelpName = "SPEC",
        };
        var management = new Option<string?>("--management")
        {
            Description = "Management HTTP endpoint HOST:PORT, or off (overrides relay.management.endpoint).",
            HelpName = "HOST:PORT",
        };
        var token = new Option<string?>("--management-token")
        {
            Description = "Token that mutating management requests must carry (overrides relay.management.token).",
            HelpName = "TOKEN",
        };
        var logFormat = LogFormatOption();
        var logFile = new Option<string?>("--log-file")
        {
            Description = "Also write the log to a daily rolling file (7 kept, at most 100 MB each), in the --log-format.",
            HelpName = "PATH",
        };

        var command = new Command("run", "Run the relay with the routes of the config files and flags.")
        {
            config, route, transparent, management, token, logFormat, logFile,
        };
        command.SetAction((parse, ct) => Guarded(stderr, () =>
        {
            var configFiles = parse.GetValue(config) ?? [];
            var routeSpecs = parse.GetValue(route) ?? [];
            var managementFlag = parse.GetValue(management);
            var tokenFlag = parse.GetValue(token);
            var transparentSpecs = parse.GetValue(transparent) ?? [];
            Akka.Configuration.Config Load() => RelayConfigLoader.Load(configFiles, routeSpecs, managementFlag, tokenFlag, transparentSpecs);
            var full = Load();
            var settings = CreateRunnable(full);

            // A reload reads the same files (their content now) and the same flags again.
            RelaySettings Reread() => CreateRunnable(Load());

            var logPath = parse.GetValue(logFile);
            if (logPath is not null)
            {
                var directory = Path.GetDirectoryName(Path.GetFullPath(logPath))!;
                if (!Directory.Exists(directory))
                {
                    throw new RelayConfigException("--log-file", logPath, $"the directory {directory} does not exist");
                }
            }

            return handlers.Run(new RunRequest(settings, full, parse.GetValue(logFormat), logPath, Reread), ct);
        }));
        return command;
    }

    private static RelaySettings CreateRunnable(Akka.Configuration.Config full)
    {
        var settings = RelaySettings.Create(full);
        if (settings.Routes.Count == 0)
        {
            throw new RelayConfigException("relay.routes", null,
                "no routes to run: give --route [NAME@]LISTEN=UPSTREAM or a --config file with relay.routes");
        }

        return settings;
    }

    private static Command DemoCommand(RelayCliHandlers handlers, TextWriter stderr)
    {
        var seconds = new Option<int>("--seconds")
        {
            Description = "How long to push traffic through the relay.",
            DefaultValueFactory = _ => 5,
        };
        var circuits = new Option<int>("--circuits")
        {
            Description = "How many circuits carry traffic at once.",
            DefaultValueFactory = _ => 8,
        };
        var logFormat = LogFormatOption();
        var command = new Command("demo", "Self-contained showcase: the relay on its built-in defaults, a built-in upstream, live progress and a summary table.")
        {
            seconds, circuits, logFormat,
        };
        command.SetAction((parse, ct) => Guarded(stderr, () =>
        {
            var s = parse.GetValue(seconds);
            var c = parse.GetValue(circuits);
            if (s is < 1 or > 3600)
            {
                throw new RelayConfigException("--seconds", s.ToString(System.Globalization.CultureInfo.InvariantCulture), "must be from 1 to 3600");
            }

            if (c is < 1 or > 10_000)
            {
                throw new RelayConfigException("--circuits", c.ToString(System.Globalization.CultureInfo.InvariantCulture), "must be from 1 to 10000");
            }

            return handlers.Demo(new DemoRequest(s, c, parse.GetValue(logFormat)), ct);
        }));
        return command;
    }

    private static Command CheckConfigCommand(TextWriter stdout, TextWriter stderr)
    {
        var files = new Argument<string[]>("FILE")
        {
            Description = "HOCON config files, layered as relay run --config layers them.",
            Arity = ArgumentArity.OneOrMore,
        };
        var command = new Command("check-config", "Validate config files and print the effective configuration (exit 0), or the first error (exit 2).")
        {
            files,
        };
        command.SetAction((parse, _) => Guarded(stderr, async () =>
        {
            var settings = RelaySettings.Create(RelayConfigLoader.Load(parse.GetValue(files) ?? [], [], null, null));
            await stdout.WriteAsync(RelayConfigLoader.Render(settings));
            return ExitOk;
        }));
        return command;
    }

    private static Command StatusCommand(
        string name,
        string description,
        Func<StatusRequest, CancellationToken, Task<int>> handler,
        bool withFilters,
        TextWriter stderr)
    {
        var management = ManagementOption();
        var route = new Option<string?>("--route") { Description = "Only circuits of this route.", HelpName = "NAME" };
        var state = new Option<string?>("--state")
        {
            Description = $"Only circuits in this state: {string.Join(", ", CircuitStates)}.",
            HelpName = "STATE",
        };
        var command = new Command(name, description) { management };
        if (withFilters)
        {
            command.Add(route);
            command.Add(state);
        }

        command.SetAction((parse, ct) => Guarded(stderr, () =>
        {
            var url = ParseManagementUrl(parse.GetValue(management) ?? "");
            string? routeFilter = null, stateFilter = null;
            if (withFilters)
            {
                routeFilter = parse.GetValue(route);
                stateFilter = parse.GetValue(state);
                if (routeFilter is not null && !RelaySettings.IsValidRouteName(routeFilter))
                {
                    throw new RelayConfigException("--route", routeFilter, "is not a route name");
                }

                if (stateFilter is not null && !CircuitStates.Contains(stateFilter, StringComparer.Ordinal))
                {
                    throw new RelayConfigException("--state", stateFilter, $"must be one of {string.Join(", ", CircuitStates)}");
                }
            }

            return handler(new StatusRequest(url, routeFilter, stateFilter), ct);
        }));
        return command;
    }

    /// <summary>The environment variable <c>relay handover</c> reads the token from, so it need not show in <c>ps</c>.</summary>
    public const string TokenVariable = "RELAY_MANAGEMENT_TOKEN";

    private static Command HandoverCommand(Func<HandoverRequest, CancellationToken, Task<int>> handler, TextWriter stderr)
    {
        var management = ManagementOption();
        var token = new Option<string?>("--management-token")
        {
            Description = $"The node's relay.management.token (default: ${TokenVariable}).",
            HelpName = "TOKEN",
        };
        var to = new Option<string?>("--to")
        {
            Description = "The member to hand to, as akka.tcp://relay@HOST:PORT or HOST (default: the oldest other member).",
            HelpName = "ADDRESS",
        };
        var json = new Option<bool>("--json") { Description = "Print the outcome as the management API's JSON instead of one line." };
        var command = new Command("handover",
            "Move the established circuits and the addresses of the node holding the service to another member (POST /cluster/handover): exit 0 when completed, 3 when rolled back or failed, 1 when the endpoint refused or was unreachable.")
        {
            management, token, to, json,
        };
        command.SetAction((parse, ct) => Guarded(stderr, () =>
        {
            var url = ParseManagementUrl(parse.GetValue(management) ?? "");
            var target = parse.GetValue(to);
            if (target is not null && target.Trim().Length == 0)
            {
                throw new RelayConfigException("--to", target, "must name a member, like akka.tcp://relay@198.18.0.3:2552 or 198.18.0.3");
            }

            var secret = parse.GetValue(token) ?? Environment.GetEnvironmentVariable(TokenVariable);
            return handler(new HandoverRequest(url, string.IsNullOrEmpty(secret) ? null : secret, target?.Trim(), parse.GetValue(json)), ct);
        }));
        return command;
    }

    private static Option<string> ManagementOption() => new("--management")
    {
        Description = "Management API URL.",
        HelpName = "URL",
        DefaultValueFactory = _ => "http://127.0.0.1:8558",
    };

    /// <summary>Accepts http(s)://host:port, or host:port as a shorthand for http://host:port.</summary>
    private static Uri ParseManagementUrl(string text)
    {
        var candidate = text.Contains("://", StringComparison.Ordinal) ? text : $"http://{text}";
        if (!Uri.TryCreate(candidate, UriKind.Absolute, out var url)
            || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps)
            || url.Host.Length == 0)
        {
            throw new RelayConfigException("--management", text, "must be a URL like http://127.0.0.1:8558");
        }

        return url;
    }

    private static Option<LogFormat> LogFormatOption() => new("--log-format")
    {
        Description = "Log output: text (console) or json (CLEF, one object per line).",
        HelpName = "text|json",
        DefaultValueFactory = _ => LogFormat.Text,
        CustomParser = result =>
        {
            var value = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
            switch (value.ToLowerInvariant())
            {
                case "text":
                    return LogFormat.Text;
                case "json":
                    return LogFormat.Json;
                default:
                    result.AddError($"--log-format = \"{value}\": must be text or json");
                    return LogFormat.Text;
            }
        },
    };

    // Configuration and argument errors end here as one line and exit code 2; anything else
    // is the handler's business and propagates.
    private static async Task<int> Guarded(TextWriter stderr, Func<Task<int>> action)
    {
        try
        {
            return await action();
        }
        catch (RelayConfigException e)
        {
            await stderr.WriteLineAsync($"relay: {e.Message}");
            return ExitUsage;
        }
    }

    private static string Describe(IReadOnlyList<ParseError> errors)
    {
        // "relay bogus" reports both "Required command was not provided" and the unknown
        // token; the unknown token is the one that tells the user what went wrong.
        var chosen = errors.FirstOrDefault(e => e.Message.StartsWith("Unrecognized", StringComparison.Ordinal))
            ?? errors.FirstOrDefault();
        var message = chosen?.Message ?? "invalid arguments";
        return string.Join(' ', message.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
    }

    private sealed class PrintVersion : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            parseResult.InvocationConfiguration.Output.WriteLine(Version);
            return ExitOk;
        }
    }
}
