using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Relay.Actors;
using Relay.Actors.Logging;
using Relay.Host.Logging;
using Serilog.Events;

namespace Relay.Host.Management;

/// <summary>
/// <c>GET /loglevel</c> and <c>PUT /loglevel</c> (needs the token): the level of the whole
/// Serilog pipeline and of Akka's own filter, changed without a restart.
/// </summary>
internal static class LogLevelRoutes
{
    private static readonly string Allowed = string.Join('|', Enum.GetNames<LogEventLevel>());

    public static IEndpointRouteBuilder MapLogLevelRoutes(this IEndpointRouteBuilder routes, ManagementContext context)
    {
        routes.MapGet("/loglevel", () => context.Node is { } node ? Get(node) : ManagementResults.NoNode());
        // Typed as a Func so minimal APIs write the IResult; a bare HttpContext lambda would
        // bind as a RequestDelegate and drop it.
        routes.MapPut("/loglevel", (Func<HttpContext, Task<IResult>>)(http =>
                context.Node is { } node ? Put(node, context, http) : Task.FromResult(ManagementResults.NoNode())))
            .RequireManagementToken(context);
        return routes;
    }

    private static IResult Get(RelayNode node) =>
        LevelSwitchOf(node) is { } levelSwitch
            ? Results.Json(new LogLevelBody(levelSwitch.MinimumLevel.ToString()), ManagementJsonContext.Api.LogLevelBody)
            : NoPipeline();

    private static async Task<IResult> Put(RelayNode node, ManagementContext context, HttpContext http)
    {
        if (LevelSwitchOf(node) is not { } levelSwitch)
        {
            return NoPipeline();
        }

        LogLevelBody? body;
        try
        {
            body = await JsonSerializer.DeserializeAsync(http.Request.Body, ManagementJsonContext.Api.LogLevelBody, http.RequestAborted)
                .ConfigureAwait(false);
        }
        catch (JsonException e)
        {
            return ManagementResults.Error(StatusCodes.Status400BadRequest,
                $"the body is not JSON of the form {{\"level\":\"{Allowed}\"}}: {e.Message}");
        }

        // Names only: Enum.TryParse would also take "2" or "7", which are no level an operator means.
        var name = body?.Level;
        if (name is null || !Enum.GetNames<LogEventLevel>().Contains(name, StringComparer.OrdinalIgnoreCase)
            || !Enum.TryParse<LogEventLevel>(name, ignoreCase: true, out var level))
        {
            return ManagementResults.Error(StatusCodes.Status400BadRequest,
                $"level '{name}' is not one of {Allowed}");
        }

        var previous = levelSwitch.MinimumLevel;
        // Logged while the more verbose of the two levels is in force, so the line is never
        // filtered out by the change it reports.
        if (level > previous)
        {
            LogChange(context, http, previous, level);
        }

        RelayLogging.SetLevel(node.System, level);
        if (level <= previous)
        {
            LogChange(context, http, previous, level);
        }

        return Results.Json(new LogLevelBody(level.ToString()), ManagementJsonContext.Api.LogLevelBody);
    }

    private static void LogChange(ManagementContext context, HttpContext http, LogEventLevel from, LogEventLevel to) =>
        RelayEvents.LogLevelChanged.Log(context.Log, from.ToString(), to.ToString(), http.Connection.RemoteIpAddress?.ToString() ?? "?");

    private static Serilog.Core.LoggingLevelSwitch? LevelSwitchOf(RelayNode node)
    {
        var setup = node.System.Settings.Setup.Get<RelayLoggingSetup>();
        return setup.HasValue ? setup.Value.LevelSwitch : null;
    }

    private static IResult NoPipeline() =>
        ManagementResults.Error(StatusCodes.Status503ServiceUnavailable, "the relay was started without its logging pipeline; its level cannot be read or set");
}
