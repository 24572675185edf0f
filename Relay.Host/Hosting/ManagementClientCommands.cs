using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Relay.Actors.Configuration;
using Relay.Host.Cli;
using Relay.Host.Management;

namespace Relay.Host.Hosting;

/// <summary>
/// <c>relay status</c> and <c>relay circuits</c>: tables from a node's management API, in the
/// spirit of Petabridge's pbm but over plain HTTP; <c>relay handover</c>: <c>POST
/// /cluster/handover</c> and its outcome. An unreachable endpoint is one line and exit code 1.
/// </summary>
public static class ManagementClientCommands
{
    public const int ExitUnreachable = 1;

    /// <summary><c>relay handover</c>: the node tried and the handover was not done (rolled back or failed).</summary>
    public const int ExitHandoverNotDone = 3;

    /// <summary>
    /// Longer than the node ever takes to answer: it gives up itself after three handover
    /// timeouts (at most 3 min with the largest <c>relay.cluster.handover.timeout</c>).
    /// </summary>
    private static readonly TimeSpan HandoverWait = TimeSpan.FromMinutes(4);

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

    /// <summary>
    /// Asks the node to hand over, and says how it went: one line on stdout and exit 0 when
    /// completed; one line on stderr and <see cref="ExitHandoverNotDone"/> when rolled back or
    /// failed; one line and <see cref="ExitUnreachable"/> when the endpoint refused the
    /// request (token, not clustered) or did not answer. With <see cref="HandoverRequest.Json"/>
    /// the outcome goes to stdout as the API's JSON, whatever it was.
    /// </summary>
    public static async Task<int> HandoverAsync(HandoverRequest request, TextWriter stdout, TextWriter stderr, CancellationToken cancellation)
    {
        using var http = Client(request.Management, HandoverWait);
        using var post = new HttpRequestMessage(HttpMethod.Post, "cluster/handover")
        {
            Content = new FormUrlEncodedContent(request.To is { } to ? [new("to", to)] : []),
        };
        if (request.Token is { } token)
        {
            post.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        string body;
        HttpStatusCode status;
        try
        {
            using var response = await http.SendAsync(post, cancellation);
            status = response.StatusCode;
            body = await response.Content.ReadAsStringAsync(cancellation);
        }
        catch (HttpRequestException e)
        {
            await stderr.WriteLineAsync($"relay: cannot reach the management endpoint {request.Management}: {e.Message}");
            return ExitUnreachable;
        }
        catch (TaskCanceledException) when (!cancellation.IsCancellationRequested)
        {
            await stderr.WriteLineAsync($"relay: the management endpoint {request.Management} gave no answer within {HandoverWait.TotalMinutes:0} min");
            return ExitUnreachable;
        }

        var outcome = Outcome(body);
        if (outcome is null || status is not (HttpStatusCode.OK or HttpStatusCode.Conflict))
        {
            await stderr.WriteLineAsync($"relay: POST /cluster/handover answered {(int)status}: {ErrorOf(body)}");
            return ExitUnreachable;
        }

        var (result, detail, moved, stayed, reset, bytesMoved, pauseMs, busyPauseMs) = outcome.Value;
        if (request.Json)
        {
            await stdout.WriteLineAsync(body);
        }

        if (status == HttpStatusCode.OK && result == "completed")
        {
            if (!request.Json)
            {
                // A relay that predates waves reports one pause, which its busy circuits saw too.
                var busy = busyPauseMs > 0 ? busyPauseMs : pauseMs;
                await stdout.WriteLineAsync(
                    $"handover completed: {detail}; {stayed} stayed, {reset} reset, {Bytes(bytesMoved)}B of queues moved, paused {Ms(busy)} ms (busy circuits), {Ms(pauseMs)} ms (all)");
            }

            return 0;
        }

        await stderr.WriteLineAsync($"relay: handover {result}: {detail} ({moved} moved, {stayed} stayed, {reset} reset)");
        return ExitHandoverNotDone;
    }

    /// <summary>The fields of a handover outcome, or null when <paramref name="body"/> is not one (an error body, say).</summary>
    private static string Ms(double ms) => ms.ToString("0.0", CultureInfo.InvariantCulture);

    private static (string Result, string Detail, int Moved, int Stayed, int Reset, long BytesMoved, double PauseMs, double BusyPauseMs)? Outcome(string body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            var root = json.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("result", out var result) || result.ValueKind != JsonValueKind.String)
            {
                return null;
            }

            string Text(string name) => root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";
            long Number(string name) => root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : 0;
            double Ms(string name) => root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : 0;
            return (result.GetString()!, Text("detail"), (int)Number("moved"), (int)Number("stayed"), (int)Number("reset"), Number("bytesMoved"),
                Ms("pauseMs"), Ms("busyPauseMs"));
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The <c>error</c> of the API's error body, else the body itself (trimmed to one line).</summary>
    private static string ErrorOf(string body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            if (json.RootElement.ValueKind == JsonValueKind.Object
                && (json.RootElement.TryGetProperty("error", out var error) || json.RootElement.TryGetProperty("message", out error))
                && error.ValueKind == JsonValueKind.String)
            {
                return error.GetString()!;
            }
        }
        catch (JsonException)
        {
            // Not JSON (a proxy's page, say): shown as it is.
        }

        var line = string.Join(' ', body.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        return line.Length == 0 ? "(no body)" : line.Length > 200 ? line[..200] + "..." : line;
    }

    private static HttpClient Client(Uri management, TimeSpan? timeout = null) => new()
    {
        BaseAddress = management.AbsoluteUri.EndsWith('/') ? management : new Uri(management.AbsoluteUri + "/"),
        Timeout = timeout ?? TimeSpan.FromSeconds(10),
    };

    private static string Bytes(long bytes) => ByteUnits.Letters.Rounded(bytes, "0.0", "0.0", "0.0");
}
