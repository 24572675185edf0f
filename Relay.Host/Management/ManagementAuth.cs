using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;
using Relay.Actors.Logging;
using Relay.Host.Logging;

namespace Relay.Host.Management;

/// <summary>
/// The token rule of mutating routes: read-only unless <c>relay.management.token</c> is set
/// (403, saying how to set it), then <c>Authorization: Bearer &lt;token&gt;</c> or 401.
/// </summary>
internal sealed class ManagementAuth : IEndpointFilter
{
    private readonly ManagementContext _context;
    private readonly byte[]? _tokenHash;

    public ManagementAuth(ManagementContext context)
    {
        _context = context;
        _tokenHash = context.Token.Length == 0 ? null : Hash(context.Token);
    }

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var http = invocation.HttpContext;
        var request = http.Request;
        if (_tokenHash is null)
        {
            return ManagementResults.Error(StatusCodes.Status403Forbidden,
                $"{request.Method} {request.Path} changes the relay, and this endpoint is read-only: set relay.management.token " +
                "in the config (or pass --management-token) and send it as 'Authorization: Bearer <token>'");
        }

        var presented = BearerToken(request.Headers.Authorization.ToString());
        // Both sides are hashed first, so FixedTimeEquals compares equal lengths and the time
        // taken says nothing about the token's length or its first wrong byte.
        if (presented is null || !CryptographicOperations.FixedTimeEquals(Hash(presented), _tokenHash))
        {
            // Never the presented token: a typo of the real one would end up in the log.
            RelayEvents.ManagementUnauthorized.Log(_context.Log, request.Method, request.Path.Value, http.Connection.RemoteIpAddress?.ToString() ?? "?",
                presented is null ? "no bearer token" : "wrong bearer token");
            // RFC 6750 §3: a 401 names the scheme the client should use.
            http.Response.Headers[HeaderNames.WWWAuthenticate] = "Bearer realm=\"relay\"";
            return ManagementResults.Error(StatusCodes.Status401Unauthorized,
                presented is null
                    ? $"{request.Method} {request.Path} needs 'Authorization: Bearer <token>'"
                    : $"the bearer token for {request.Method} {request.Path} is wrong");
        }

        return await next(invocation).ConfigureAwait(false);
    }

    private static string? BearerToken(string header)
    {
        const string Scheme = "Bearer ";
        return header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase) && header.Length > Scheme.Length
            ? header[Scheme.Length..].Trim()
            : null;
    }

    private static byte[] Hash(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));
}

internal static class ManagementAuthExtensions
{
    /// <summary>The route changes the relay: it needs the management token (<see cref="ManagementAuth"/>).</summary>
    public static TBuilder RequireManagementToken<TBuilder>(this TBuilder builder, ManagementContext context)
        where TBuilder : IEndpointConventionBuilder =>
        builder.AddEndpointFilter(new ManagementAuth(context));
}
