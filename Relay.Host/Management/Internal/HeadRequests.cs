using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Relay.Host.Management.Internal;

/// <summary>
/// INTERNAL API. HEAD on every GET route, as HTTP asks of a server (RFC 9110, 9.3.2): the
/// status and headers of GET and no body. Uptime probes and balancers' checks use HEAD.
/// </summary>
internal static class HeadRequests
{
    /// <summary>Every GET endpoint mapped under <paramref name="builder"/> answers HEAD too.</summary>
    public static TBuilder AnswerHeadOnGet<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        builder.Add(endpoint =>
        {
            if (endpoint.Metadata.OfType<IHttpMethodMetadata>().LastOrDefault() is { } methods
                && methods.HttpMethods.Contains(HttpMethods.Get)
                && !methods.HttpMethods.Contains(HttpMethods.Head))
            {
                endpoint.Metadata.Add(new HttpMethodMetadata([.. methods.HttpMethods, HttpMethods.Head], methods.AcceptCorsPreflight));
            }
        });
        return builder;
    }
}
