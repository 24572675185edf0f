using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using Relay.Actors.Circuits;

namespace Relay.Host.Management;

/// <summary>Body of the health routes: <c>{"status":"alive"}</c>.</summary>
public sealed record StatusResponse(string Status);

/// <summary>Body of every error response: <c>{"error":"..."}</c>.</summary>
public sealed record ErrorResponse(string Error);

/// <summary>One circuit as <c>GET /circuits</c> shows it; the CLI reads the same type back.</summary>
/// <param name="BytesUp">Client to upstream.</param>
/// <param name="State">The wire name: <c>connecting|established|half-closed|closed|lost</c>.</param>
/// <param name="OpenedAt">UTC.</param>
/// <param name="LastActivity">UTC, last byte moved in either direction.</param>
public sealed record CircuitView(
    long Id,
    string Route,
    string Node,
    string Client,
    string Upstream,
    string State,
    long BytesUp,
    long BytesDown,
    DateTime OpenedAt,
    DateTime LastActivity)
{
    public static CircuitView From(CircuitEntry entry) => new(
        entry.Id,
        entry.Route,
        entry.Node,
        entry.Client.ToString() ?? string.Empty,
        entry.Upstream,
        entry.State.ToWireName(),
        entry.Counters.BytesUp,
        entry.Counters.BytesDown,
        entry.OpenedAt.UtcDateTime,
        entry.LastActivity.UtcDateTime);
}

/// <summary>
/// INTERNAL API. Source-generated JSON for every management body: camelCase, no reflection
/// at run time. A new route adds its types here.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(StatusResponse))]
[JsonSerializable(typeof(ErrorResponse))]
[JsonSerializable(typeof(CircuitView))]
[JsonSerializable(typeof(IReadOnlyList<CircuitView>))]
[JsonSerializable(typeof(CircuitView[]))]
internal sealed partial class ManagementJsonContext : JsonSerializerContext
{
    /// <summary>
    /// The instance every route uses. Operators read these bodies with curl, so characters
    /// such as <c>'</c> and <c>+</c> stay literal; the default encoder escapes them only for
    /// JSON pasted into HTML, which this API never serves.
    /// </summary>
    public static ManagementJsonContext Api { get; } = new(new JsonSerializerOptions(JsonSerializerDefaults.Web)
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
