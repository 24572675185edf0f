using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Relay.Actors.Logging;
using Relay.Host.Logging;
using Relay.Host.Management.Internal;
using Serilog;

namespace Relay.Host.Management;

/// <summary>
/// The management HTTP endpoint (Akka.Management's role, on ASP.NET Core minimal APIs and
/// Kestrel). Each area of routes lives in its own file and is mapped in <see cref="MapRoutes"/>.
/// </summary>
public sealed class ManagementServer : IAsyncDisposable
{
    // Long enough for an in-flight GET to finish, short enough not to hold up relay shutdown.
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(5);

    private readonly WebApplication _app;
    private int _disposed;

    private ManagementServer(WebApplication app, Uri baseAddress)
    {
        _app = app;
        BaseAddress = baseAddress;
    }

    /// <summary>The address actually bound, e.g. <c>http://127.0.0.1:8558/</c>; with port 0, the port the OS chose.</summary>
    public Uri BaseAddress { get; }

    /// <summary>Binds <paramref name="endpoint"/> and serves until disposed.</summary>
    /// <exception cref="ManagementBindException">The endpoint cannot be bound (in use, not a local address, no permission).</exception>
    public static async Task<ManagementServer> StartAsync(IPEndPoint endpoint, ManagementContext context, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentNullException.ThrowIfNull(context);

        var app = Build(endpoint, context);
        try
        {
            await app.StartAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            await app.DisposeAsync().ConfigureAwait(false);
            if (BindProblem(e) is { } problem)
            {
                throw new ManagementBindException(endpoint, problem, e);
            }

            throw;
        }

        var addresses = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>();
        var server = new ManagementServer(app, new Uri(addresses.Addresses.First()));
        RelayEvents.ManagementListening.Log(context.Log, server.BaseAddress.ToString());
        _ = Task.Run(() => WarmUpAsync(server.BaseAddress));
        return server;
    }

    /// <summary>
    /// One request to <c>/health/alive</c> right after start, in the background. The server's
    /// first request builds what every later one reuses (Kestrel's connection and parsing
    /// paths, the routing table, the middleware), about 75-160 ms here: paid now, not by the
    /// operator's first <c>POST /cluster/handover</c>, whose answer a rolling restart waits for.
    /// </summary>
    private static async Task WarmUpAsync(Uri baseAddress)
    {
        try
        {
            // Straight to this process: never through a proxy an HTTP_PROXY variable names.
            using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(5) };
            using var response = await client.GetAsync("health/alive").ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or InvalidOperationException)
        {
            // Nothing depends on it: the first real request pays instead.
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        using var timeout = new CancellationTokenSource(StopTimeout);
        try
        {
            await _app.StopAsync(timeout.Token).ConfigureAwait(false);
        }
        finally
        {
            await _app.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Every route area of the management API; a new area is one more line here.</summary>
    private static void MapRoutes(WebApplication app, ManagementContext context)
    {
        var routes = app.MapGroup("").AnswerHeadOnGet();
        routes.MapHealthRoutes(context);
        routes.MapCircuitRoutes(context);
        routes.MapMetricsRoutes(context);
        routes.MapRouteRoutes(context);
        routes.MapReloadRoutes(context);
        routes.MapLogLevelRoutes(context);
        routes.MapClusterRoutes(context);
    }

    private static WebApplication Build(IPEndPoint endpoint, ManagementContext context)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = "relay-management",
            EnvironmentName = Environments.Production,
            ContentRootPath = AppContext.BaseDirectory,
        });

        // The endpoint and everything else come from the relay's own config: an appsettings.json
        // in the working directory or an ASPNETCORE_URLS variable must not quietly move it.
        builder.Configuration.Sources.Clear();

        // ASP.NET Core's logging joins the relay's one Serilog pipeline; the logger belongs to
        // the host, which disposes it after everything else (dispose: false).
        builder.Logging.ClearProviders();
        builder.Logging.AddSerilog(context.Log, dispose: false);
        // ASP.NET's Information events are per request; only its problems are worth a line.
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        // The host logs "Hosting failed to start" with the whole exception; StartAsync turns
        // the same failure into a one-line ManagementBindException for the caller to report.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.None);

        builder.Services.AddSingleton<IHostLifetime, DetachedHostLifetime>();
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.TypeInfoResolverChain.Insert(0, ManagementJsonContext.Api));
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.AddServerHeader = false);

        var app = builder.Build();

        // Bound through the server addresses rather than Kestrel's Listen(): with an address
        // present the host never reads ASPNETCORE_URLS, which slim builders take from the
        // environment before any of the above runs.
        app.Urls.Add($"http://{endpoint}");
        app.Use(async (http, next) =>
        {
            try
            {
                await next(http).ConfigureAwait(false);
            }
            catch (Exception e) when (!http.Response.HasStarted && !http.RequestAborted.IsCancellationRequested)
            {
                RelayEvents.ManagementRequestFailed.LogException(context.Log, e, http.Request.Method, http.Request.Path.Value);
                http.Response.StatusCode = StatusCodes.Status500InternalServerError;
                await ManagementResults.WriteErrorAsync(http, $"internal error: {e.Message}").ConfigureAwait(false);
            }
        });
        app.UseStatusCodePages(pages => ManagementResults.WriteBodyForStatusAsync(pages.HttpContext));
        MapRoutes(app, context);
        return app;
    }

    /// <summary>The one-line reason a bind failed, or null when the failure is something else.</summary>
    private static string? BindProblem(Exception exception)
    {
        for (Exception? current = exception; current is not null; current = current.InnerException)
        {
            switch (current)
            {
                case AddressInUseException:
                case SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse }:
                    return "is already in use";
                case SocketException socket:
                    return $"cannot be bound: {socket.Message.ReplaceLineEndings(" ")}";
            }
        }

        return null;
    }
}
