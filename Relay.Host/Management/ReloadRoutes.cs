using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Relay.Host.Management;

/// <summary>
/// <c>POST /reload</c> (needs the token): what SIGHUP does, with the outcome in the answer.
/// 200 with the changes, or 422 with the one-line problem when the new config is rejected
/// (the running config stays).
/// </summary>
internal static class ReloadRoutes
{
    public static IEndpointRouteBuilder MapReloadRoutes(this IEndpointRouteBuilder routes, ManagementContext context)
    {
        routes.MapPost("/reload", async (HttpContext http) =>
        {
            if (context.Reload is not { } reload)
            {
                return ManagementResults.Error(StatusCodes.Status503ServiceUnavailable, "this endpoint cannot reload the relay");
            }

            var outcome = await reload("POST /reload").ConfigureAwait(false);
            if (!outcome.Applied)
            {
                return ManagementResults.Error(StatusCodes.Status422UnprocessableEntity,
                    $"reload rejected, the running config stays: {outcome.Problem}");
            }

            var changes = outcome.Changes!;
            return Results.Json(
                new ReloadResponse("reloaded", changes.ToString(), changes.Added, changes.Removed, changes.Changed, changes.Rebound,
                    outcome.RestartNeeded),
                ManagementJsonContext.Api.ReloadResponse);
        }).RequireManagementToken(context);
        return routes;
    }
}
