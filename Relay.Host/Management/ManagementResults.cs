using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;

namespace Relay.Host.Management;

/// <summary>The one shape of every management error: <c>{"error":"..."}</c> with a status code.</summary>
internal static class ManagementResults
{
    public static IResult Error(int statusCode, string message) =>
        Results.Json(new ErrorResponse(message), ManagementJsonContext.Api.ErrorResponse, statusCode: statusCode);

    /// <summary>A route that needs the running node, on a server started without one.</summary>
    public static IResult NoNode() =>
        Error(StatusCodes.Status503ServiceUnavailable, "no relay node is attached to this management endpoint");

    /// <summary>
    /// Gives an empty error response (no route matched, wrong method, and whatever later
    /// middleware rejects) a JSON body, so clients never have to handle two error formats.
    /// </summary>
    public static Task WriteBodyForStatusAsync(HttpContext http)
    {
        var request = http.Request;
        var message = http.Response.StatusCode switch
        {
            StatusCodes.Status404NotFound => $"no route for {request.Method} {request.Path}",
            StatusCodes.Status405MethodNotAllowed => $"method {request.Method} is not allowed on {request.Path}",
            var code => ReasonPhrases.GetReasonPhrase(code).ToLowerInvariant(),
        };
        return WriteErrorAsync(http, message);
    }

    public static Task WriteErrorAsync(HttpContext http, string message) =>
        http.Response.WriteAsJsonAsync(new ErrorResponse(message), ManagementJsonContext.Api.ErrorResponse);
}
