using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Relay.Actors;
using Relay.Actors.Configuration;
using Relay.Host.Logging;
using Relay.Host.Management;
using Relay.Tests.Logging;
using Relay.Tests.Support;
using Serilog.Core;
using Serilog.Events;

namespace Relay.Tests.Management;

/// <summary>
/// A real relay with the Serilog pipeline of <c>relay run</c> (captured as CLEF) and its
/// management endpoint on 127.0.0.1:0, for tests that drive the API against live circuits.
/// </summary>
internal sealed class LiveRelay : IAsyncDisposable
{
    private readonly Logger _logger;

    private LiveRelay(RelayNode node, ManagementServer server, LogCapture log, Logger logger)
    {
        Node = node;
        Server = server;
        Log = log;
        _logger = logger;
        Http = new HttpClient { BaseAddress = server.BaseAddress };
    }

    public RelayNode Node { get; }

    public ManagementServer Server { get; }

    public HttpClient Http { get; }

    /// <summary>Everything the relay and the management server logged, one CLEF object per line.</summary>
    public LogCapture Log { get; }

    /// <summary>A relay with <paramref name="routes"/> (default: one route "test" to <paramref name="upstream"/>).</summary>
    public static async Task<LiveRelay> StartAsync(IPEndPoint upstream, string token = "", params RouteSettings[] routes)
    {
        var log = new LogCapture();
        var levelSwitch = new LoggingLevelSwitch(LogEventLevel.Information);
        var logger = RelayLogging.CreateLogger(LogFormat.Json, levelSwitch, log);
        var settings = TestSettings.Relay(2, routes.Length > 0 ? routes : [TestSettings.Route(upstream)]);
        var node = await RelayHarness.StartAsync(settings, RelayLogging.AkkaConfig, [new RelayLoggingSetup(logger, levelSwitch)]);
        var context = new ManagementContext(node.Circuits, () => node.IsReady, node.NodeName, logger, token, node);
        var server = await ManagementServer.StartAsync(new IPEndPoint(IPAddress.Loopback, 0), context, CancellationToken.None);
        return new LiveRelay(node, server, log, logger);
    }

    public IPEndPoint Listen => Node.Listen();

    public async Task<string> GetTextAsync(string path)
    {
        using var response = await Http.GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }

    public async Task<(HttpStatusCode Status, JsonElement Json)> SendAsync(
        HttpMethod method, string path, string? token = null, string? jsonBody = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        if (jsonBody is not null)
        {
            request.Content = new StringContent(jsonBody, Encoding.UTF8, "application/json");
        }

        using var response = await Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var document = JsonDocument.Parse(text);
        return (response.StatusCode, document.RootElement.Clone());
    }

    public Task<(HttpStatusCode Status, JsonElement Json)> GetJsonAsync(string path) => SendAsync(HttpMethod.Get, path);

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        await Node.DisposeAsync();
        await _logger.DisposeAsync();
    }
}
