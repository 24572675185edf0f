using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Relay.Actors;

namespace Relay.Host.Management;

/// <summary><c>GET /routes</c> and <c>POST /routes/{name}/drain</c> (needs the token).</summary>
internal static class RouteRoutes
{
    public static IEndpointRouteBuilder MapRouteRoutes(this IEndpointRouteBuilder routes, ManagementContext context)
    {
        var group = routes.MapGroup("/routes");
        group.MapGet("/", () => context.Node is { } node ? List(node) : ManagementResults.NoNode());
        group.MapPost("/{name}/drain", (string name) => context.Node is { } node ? Drain(node, name) : Task.FromResult(ManagementResults.NoNode()))
            .RequireManagementToken(context);
        return routes;
    }

    private static IResult List(RelayNode node)
    {
        var samples = node.Metrics.Collect(node.Circuits).ToDictionary(s => s.Route, StringComparer.Ordinal);
        var views = node.Routes
            .Select(bound =>
            {
                var sample = samples[bound.Route];
                var settings = node.Settings.Routes.Single(r => r.Name == bound.Route);
                return new RouteView(bound.Route, bound.Endpoint.ToString(), settings.Upstream.ToString(),
                    node.IsDraining(bound.Route) ? "draining" : "listening",
                    sample.Active, sample.Total, sample.BytesUp, sample.BytesDown);
            })
            .ToList();
        return Results.Json<IReadOnlyList<RouteView>>(views, ManagementJsonContext.Api.IReadOnlyListRouteView);
    }

    private static async Task<IResult> Drain(RelayNode node, string name) =>
        await node.DrainAsync(name).ConfigureAwait(false) switch
        {
            DrainOutcome.Draining => Results.Json(new RouteDrainResponse(name, "draining"), ManagementJsonContext.Api.RouteDrainResponse,
                statusCode: StatusCodes.Status202Accepted),
            DrainOutcome.AlreadyDraining => ManagementResults.Error(StatusCodes.Status409Conflict, $"route {name} is already draining"),
            _ => ManagementResults.Error(StatusCodes.Status404NotFound,
                $"no route '{name}' on this node; routes: {string.Join(", ", node.Routes.Select(r => r.Route))}"),
        };
}
