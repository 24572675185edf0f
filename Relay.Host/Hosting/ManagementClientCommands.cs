using System.Globalization;
using System.Net.Http.Json;
using Relay.Actors.Configuration;
using Relay.Host.Cli;
using Relay.Host.Management;

namespace Relay.Host.Hosting;

/// <summary>
/// <c>relay status</c> and <c>relay circuits</c>: tables from a node's management API, in the
/// spirit of Petabridge's pbm but over plain HTTP. An unreachable endpoint is one line and
/// exit code 1.
/// </summary>
public static class ManagementClientCommands
{
    public const int ExitUnreachable = 1;

    public static async Task<int> StatusAsync(StatusRequest request, TextWriter stdout, TextWriter stderr, CancellationToken cancellation)
    {
        using var http = Client(request.Management);
        try
        {
            using var ready = await http.GetAsync("health/ready", cancellation);
            var routes = await http.GetFromJsonAsync("routes", ManagementJsonContext.Default.IReadOnlyListRouteView, cancellation) ?? [];
            var circuits = await http.GetFromJsonAsync("circuits", ManagementJsonContext.Default.CircuitViewArray, cancellation) ?? [];
            await stdout.WriteLineAsync($"node       {request.Management}");
            await stdout.WriteLineAsync($"ready      {(ready.IsSuccessStatusCode ? "yes" : "no")}");
            await stdout.WriteLineAsync($"circuits   {circuits.Length} live");
            await stdout.WriteLineAsync();
            await stdout.WriteLineAsync($"{"ROUTE",-16} {"LISTEN",-22} {"UPSTREAM",-22} {"STATE",-10} {"ACTIVE",7} {"TOTAL",9} {"UP",10} {"DOWN",10}");
            foreach (var route in routes.OrderBy(r => r.Name, StringComparer.Ordinal))
            {
                await stdout.WriteLineAsync($"{route.Name,-16} {route.Listen,-22} {route.Upstream,-22} {route.State,-10} {route.Active,7} {route.Total,9} {Bytes(route.BytesUp),10} {Bytes(route.BytesDown),10}");
            }

            return 0;
        }
        catch (HttpRequestException e)
        {
            await stderr.WriteLineAsync($"relay: cannot reach the management endpoint {request.Management}: {e.Message}");
            return ExitUnreachable;
        }
    }

    public static async Task<int> CircuitsAsync(StatusRequest request, TextWriter stdout, TextWriter stderr, CancellationToken cancellation)
    {
        using var http = Client(request.Management);
        var query = new List<string>();
        if (request.Route is { } route)
        {
            query.Add("route=" + Uri.EscapeDataString(route));
        }

        if (request.State is { } state)
        {
            query.Add("state=" + Uri.EscapeDataString(state));
        }

        try
        {
            var path = "circuits" + (query.Count > 0 ? "?" + string.Join('&', query) : "");
            var circuits = await http.GetFromJsonAsync(path, ManagementJsonContext.Default.CircuitViewArray, cancellation) ?? [];
            await stdout.WriteLineAsync($"{"ID",8} {"ROUTE",-16} {"STATE",-12} {"CLIENT",-22} {"UPSTREAM",-22} {"UP",10} {"DOWN",10} {"AGE",8}");
            var now = DateTime.UtcNow;
            foreach (var c in circuits.OrderByDescending(c => c.BytesUp + c.BytesDown).ThenBy(c => c.Id))
            {
                var age = (now - c.OpenedAt).TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + "s";
                await stdout.WriteLineAsync($"{c.Id,8} {c.Route,-16} {c.State,-12} {c.Client,-22} {c.Upstream,-22} {Bytes(c.BytesUp),10} {Bytes(c.BytesDown),10} {age,8}");
            }

            await stdout.WriteLineAsync($"{circuits.Length} circuit(s)");
            return 0;
        }
        catch (HttpRequestException e)
        {
            await stderr.WriteLineAsync($"relay: cannot reach the management endpoint {request.Management}: {e.Message}");
            return ExitUnreachable;
        }
    }

    private static HttpClient Client(Uri management) => new()
    {
        BaseAddress = management.AbsoluteUri.EndsWith('/') ? management : new Uri(management.AbsoluteUri + "/"),
        Timeout = TimeSpan.FromSeconds(10),
    };

    private static string Bytes(long bytes) => ByteUnits.Letters.Rounded(bytes, "0.0", "0.0", "0.0");
}
