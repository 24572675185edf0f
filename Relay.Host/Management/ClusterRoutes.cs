using System.Collections.Immutable;
using System.Globalization;
using Akka.Actor;
using Akka.Cluster;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Relay.Actors.Cluster;

namespace Relay.Host.Management;

/// <summary>
/// Akka Management's cluster HTTP routes: <c>GET /cluster/members</c>,
/// <c>GET|PUT|DELETE /cluster/members/{address}</c> and <c>POST /cluster/members</c> (join),
/// with its JSON shapes. PUT takes the form field <c>operation=Down|Leave</c>; DELETE is a
/// leave. The mutating ones need the management token.
/// </summary>
internal static class ClusterRoutes
{
    public static IEndpointRouteBuilder MapClusterRoutes(this IEndpointRouteBuilder routes, ManagementContext context)
    {
        var members = routes.MapGroup("/cluster/members");
        members.MapGet("/", () => WithCluster(context, List));
        // A catch-all: an address such as akka.tcp://relay@198.18.0.2:2552 holds slashes.
        members.MapGet("/{**address}", (string address) => WithCluster(context, c => Get(c, address)));
        members.MapPut("/{**address}", async (HttpRequest request, string address) =>
        {
            var operation = request.HasFormContentType ? (await request.ReadFormAsync().ConfigureAwait(false))["operation"].ToString() : "";
            return WithCluster(context, c => Operate(c, address, operation));
        }).RequireManagementToken(context);
        members.MapDelete("/{**address}", (string address) => WithCluster(context, c => Operate(c, address, "leave")))
            .RequireManagementToken(context);
        members.MapPost("/", async (HttpRequest request) =>
        {
            var address = request.HasFormContentType ? (await request.ReadFormAsync().ConfigureAwait(false))["address"].ToString() : "";
            return WithCluster(context, c => Join(c, address));
        }).RequireManagementToken(context);
        routes.MapPost("/cluster/handover", async (HttpRequest request) =>
        {
            var target = request.HasFormContentType ? (await request.ReadFormAsync().ConfigureAwait(false))["to"].ToString() : "";
            if (context.Node?.Cluster is not { } cluster)
            {
                return WithCluster(context, _ => Results.Empty);
            }

            // Long enough for the slowest handover that still ends on its own: the target's
            // answer (10 s), the freeze (2 s), a dump that grows with the queued bytes (about
            // 2 ms per MB), the ship (timeout) and a rollback. Shorter, the caller would read
            // "failed" while the handover goes on.
            var outcome = await cluster.HandOverAsync(target.Length == 0 ? null : target, "request",
                (cluster.Settings.Handover.Timeout * 3) + TimeSpan.FromMinutes(1)).ConfigureAwait(false);
            // 200 for a completed handover; 409 when it was not done (rolled back or refused),
            // with the outcome either way, so a script can tell them apart.
            return Results.Json(outcome, statusCode: outcome.Completed ? StatusCodes.Status200OK : StatusCodes.Status409Conflict);
        }).RequireManagementToken(context);
        return routes;
    }

    private static IResult WithCluster(ManagementContext context, Func<Akka.Cluster.Cluster, IResult> action) =>
        context.Node?.Cluster is { } cluster
            ? action(cluster.Cluster)
            : ManagementResults.Error(StatusCodes.Status404NotFound,
                "this node is not clustered: set relay.cluster.enabled = on (see docs/OPERATIONS.md)");

    private static IResult List(Akka.Cluster.Cluster cluster)
    {
        var state = cluster.State;
        var members = state.Members.Select(View).ToList();
        var unreachable = state.Unreachable
            .Select(m => new ClusterUnreachableMemberView(m.Address.ToString(),
                state.Members.Where(o => !state.Unreachable.Contains(o)).Select(o => o.Address.ToString()).ToList()))
            .ToList();
        var oldest = state.Members.Where(m => m.Status == MemberStatus.Up || m.Status == MemberStatus.Leaving)
            .OrderBy(m => m, Member.AgeOrdering).FirstOrDefault();
        var body = new ClusterMembersResponse(
            cluster.SelfAddress.ToString(),
            members,
            unreachable,
            state.Leader?.ToString(),
            oldest?.Address.ToString(),
            ImmutableDictionary<string, string>.Empty);
        return Results.Json(body, ManagementJsonContext.Api.ClusterMembersResponse);
    }

    private static IResult Get(Akka.Cluster.Cluster cluster, string address) =>
        Find(cluster, address) is { } member
            ? Results.Json(View(member), ManagementJsonContext.Api.ClusterMemberView)
            : NotFound(address);

    private static IResult Operate(Akka.Cluster.Cluster cluster, string address, string operation)
    {
        if (Find(cluster, address) is not { } member)
        {
            return NotFound(address);
        }

        switch (operation.Trim().ToLowerInvariant())
        {
            case "down":
                cluster.Down(member.Address);
                return Message($"Downing {member.Address}");
            case "leave":
                cluster.Leave(member.Address);
                return Message($"Leaving {member.Address}");
            default:
                return Results.Json(new ClusterHttpMessage($"operation '{operation}' is not supported: use Down or Leave"),
                    ManagementJsonContext.Api.ClusterHttpMessage, statusCode: StatusCodes.Status400BadRequest);
        }
    }

    private static IResult Join(Akka.Cluster.Cluster cluster, string address)
    {
        try
        {
            var parsed = Address.Parse(address.Trim());
            cluster.Join(parsed);
            return Message($"Joining {parsed}");
        }
        catch (Exception e) when (e is UriFormatException or ArgumentException or FormatException)
        {
            return Results.Json(new ClusterHttpMessage($"address '{address}' is not an Akka address like akka.tcp://relay@198.18.0.2:2552"),
                ManagementJsonContext.Api.ClusterHttpMessage, statusCode: StatusCodes.Status400BadRequest);
        }
    }

    /// <summary>
    /// A member by its address, written in full (<c>akka.tcp://relay@h:p</c>), without the
    /// protocol (<c>relay@h:p</c>, which survives proxies that merge slashes) or as <c>h:p</c>.
    /// </summary>
    private static Member? Find(Akka.Cluster.Cluster cluster, string address)
    {
        var wanted = Normalise(Uri.UnescapeDataString(address));
        return cluster.State.Members.FirstOrDefault(m =>
        {
            var full = Normalise(m.Address.ToString());
            return full == wanted || full[(full.IndexOf('@') + 1)..] == wanted;
        });
    }

    private static string Normalise(string address)
    {
        var text = address.Trim();
        var scheme = text.IndexOf(':');
        if (scheme >= 0 && scheme + 1 < text.Length && text[scheme + 1] == '/')
        {
            text = text[(scheme + 1)..].TrimStart('/');
        }

        return text;
    }

    private static ClusterMemberView View(Member m) => new(
        m.Address.ToString(),
        m.UniqueAddress.Uid.ToString(CultureInfo.InvariantCulture),
        m.Status.ToString(),
        m.Roles.ToList());

    private static IResult NotFound(string address) =>
        Results.Json(new ClusterHttpMessage($"Member [{address}] not found"), ManagementJsonContext.Api.ClusterHttpMessage,
            statusCode: StatusCodes.Status404NotFound);

    private static IResult Message(string message) =>
        Results.Json(new ClusterHttpMessage(message), ManagementJsonContext.Api.ClusterHttpMessage);
}
