using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Relay.Actors.Circuits;

namespace Relay.Host.Management;

/// <summary><c>GET /circuits[?state=&amp;route=&amp;node=]</c> and <c>GET /circuits/{id}</c>.</summary>
internal static class CircuitRoutes
{
    public static IEndpointRouteBuilder MapCircuitRoutes(this IEndpointRouteBuilder routes, ManagementContext context)
    {
        var circuits = routes.MapGroup("/circuits");
        circuits.MapGet("/", (string? state, string? route, string? node) => List(context.Circuits, state, route, node));
        circuits.MapGet("/{id}", (string id) => Get(context.Circuits, id));
        return routes;
    }

    private static IResult List(CircuitRegistry registry, string? state, string? route, string? node)
    {
        CircuitState? wanted = null;
        if (!string.IsNullOrEmpty(state))
        {
            if (!CircuitStateNames.TryParse(state, out var parsed))
            {
                return ManagementResults.Error(
                    StatusCodes.Status400BadRequest,
                    $"state '{state}' is not one of {string.Join('|', Enum.GetValues<CircuitState>().Select(s => s.ToWireName()))}");
            }

            wanted = parsed;
        }

        var views = registry.Snapshot()
            .Where(c => wanted is null || c.State == wanted)
            .Where(c => string.IsNullOrEmpty(route) || string.Equals(c.Route, route, StringComparison.Ordinal))
            .Where(c => string.IsNullOrEmpty(node) || string.Equals(c.Node, node, StringComparison.Ordinal))
            .OrderBy(c => c.Id)
            .Select(CircuitView.From)
            .ToList();

        return Results.Json<IReadOnlyList<CircuitView>>(views, ManagementJsonContext.Api.IReadOnlyListCircuitView);
    }

    private static IResult Get(CircuitRegistry registry, string id)
    {
        if (!long.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var circuitId))
        {
            return ManagementResults.Error(StatusCodes.Status400BadRequest, $"circuit id '{id}' is not a number");
        }

        return registry.TryGet(circuitId, out var entry)
            ? Results.Json(CircuitView.From(entry), ManagementJsonContext.Api.CircuitView)
            : ManagementResults.Error(StatusCodes.Status404NotFound, $"circuit {circuitId} is not open on this node");
    }
}
