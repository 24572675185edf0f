using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Relay.Actors;
using Relay.Actors.Upstreams;

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
        var settingsByName = node.Settings.Routes.ToDictionary(r => r.Name, StringComparer.Ordinal);
        var views = node.Routes
            .Where(bound => settingsByName.ContainsKey(bound.Route))
            .Select(bound =>
            {
                var sample = samples[bound.Route];
                var settings = settingsByName[bound.Route];
                return new RouteView(bound.Route, bound.Endpoint.ToString(), settings.Upstreams.ToString(),
                    node.IsDraining(bound.Route) ? "draining" : "listening",
                    sample.Active, sample.Total, sample.BytesUp, sample.BytesDown,
                    settings.Upstreams.Balance == BalanceMode.LeastCircuits ? "least-circuits" : "round-robin",
                    Members(node, bound.Route));
            })
            .ToList();
        return Results.Json<IReadOnlyList<RouteView>>(views, ManagementJsonContext.Api.IReadOnlyListRouteView);
    }

    private static IReadOnlyList<UpstreamMemberView> Members(RelayNode node, string route) =>
        node.Pools.TryGet(route, out var pool)
            ? pool.Members.Select(m => new UpstreamMemberView(m.Address.ToString(), m.IsUp ? "up" : "down", m.Active, m.ConnectFailures,
                m.LastProblem, m.ChangedAt?.UtcDateTime)).ToList()
            : [];

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
