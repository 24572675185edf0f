using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Relay.Host.Management;

/// <summary><c>GET /health/alive</c> and <c>GET /health/ready</c>, the Akka.Management probes.</summary>
internal static class HealthRoutes
{
    private static readonly StatusResponse Alive = new("alive");
    private static readonly StatusResponse Ready = new("ready");
    private static readonly StatusResponse NotReady = new("not-ready");

    public static IEndpointRouteBuilder MapHealthRoutes(this IEndpointRouteBuilder routes, ManagementContext context)
    {
        var health = routes.MapGroup("/health");

        // Alive means the process answers HTTP; a supervisor restarts it when this fails.
        health.MapGet("/alive", () => Results.Json(Alive, ManagementJsonContext.Api.StatusResponse));

        // 503 takes a not-ready node out of a load balancer without restarting it.
        health.MapGet("/ready", () => context.IsReady()
            ? Results.Json(Ready, ManagementJsonContext.Api.StatusResponse)
            : Results.Json(NotReady, ManagementJsonContext.Api.StatusResponse, statusCode: StatusCodes.Status503ServiceUnavailable));

        return routes;
    }
}
