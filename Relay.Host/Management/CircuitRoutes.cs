using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Akka.Actor;
using Relay.Actors.Circuits;

namespace Relay.Host.Management;

/// <summary>
/// <c>GET /circuits[?state=&amp;route=&amp;node=]</c>, <c>GET /circuits/{id}</c> (with TCP_INFO) and
/// <c>DELETE /circuits/{id}</c> (reset it; needs the token).
/// </summary>
internal static class CircuitRoutes
{
    public static IEndpointRouteBuilder MapCircuitRoutes(this IEndpointRouteBuilder routes, ManagementContext context)
    {
        var circuits = routes.MapGroup("/circuits");
        circuits.MapGet("/", (string? state, string? route, string? node) => List(context, state, route, node));
        circuits.MapGet("/{id}", (string id) => Get(context.Circuits, id));
        circuits.MapDelete("/{id}", (string id) => Abort(context.Circuits, id)).RequireManagementToken(context);
        return routes;
    }

    private static IResult List(ManagementContext context, string? state, string? route, string? node)
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

        // A clustered node lists the whole cluster: its own circuits live, the others' as last
        // replicated, and those of lost nodes as lost.
        var all = context.Circuits.Snapshot().Select(CircuitView.From);
        if (context.Node?.Cluster is { } cluster)
        {
            all = all.Concat(ClusterCircuitViews.Of(cluster.Table));
        }

        var wantedName = wanted?.ToWireName();
        var views = all
            .Where(c => wantedName is null || c.State == wantedName)
            .Where(c => string.IsNullOrEmpty(route) || string.Equals(c.Route, route, StringComparison.Ordinal))
            .Where(c => string.IsNullOrEmpty(node) || string.Equals(c.Node, node, StringComparison.Ordinal))
            .OrderBy(c => c.Node, StringComparer.Ordinal)
            .ThenBy(c => c.Id)
            .ToList();

        return Results.Json<IReadOnlyList<CircuitView>>(views, ManagementJsonContext.Api.IReadOnlyListCircuitView);
    }

    private static IResult Get(CircuitRegistry registry, string id)
    {
        if (!long.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var circuitId))
        {
            return BadId(id);
        }

        return registry.TryGet(circuitId, out var entry)
            ? Results.Json(CircuitDetailView.From(entry), ManagementJsonContext.Api.CircuitDetailView)
            : NotOpen(circuitId);
    }

    private static IResult Abort(CircuitRegistry registry, string id)
    {
        if (!long.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var circuitId))
        {
            return BadId(id);
        }

        if (!registry.TryGet(circuitId, out var entry))
        {
            return NotOpen(circuitId);
        }

        // Accepted, not done: the supervisor resets both sockets on its own core thread, and
        // a circuit that closes first simply drops the message.
        entry.Supervisor.Tell(new CircuitCommands.Abort(CloseReasons.Aborted, entry.Id));
        return Results.Json(new CircuitAbortResponse(circuitId, CloseReasons.Aborted), ManagementJsonContext.Api.CircuitAbortResponse,
            statusCode: StatusCodes.Status202Accepted);
    }

    private static IResult BadId(string id) =>
        ManagementResults.Error(StatusCodes.Status400BadRequest, $"circuit id '{id}' is not a number");

    private static IResult NotOpen(long id) =>
        ManagementResults.Error(StatusCodes.Status404NotFound, $"circuit {id} is not open on this node");
}
