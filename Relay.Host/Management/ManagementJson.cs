using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using Relay.Actors.Circuits;
using Relay.Actors.Tuning;

namespace Relay.Host.Management;

/// <summary>Body of the health routes: <c>{"status":"alive"}</c>.</summary>
public sealed record StatusResponse(string Status);

/// <summary>Body of every error response: <c>{"error":"..."}</c>.</summary>
public sealed record ErrorResponse(string Error);

/// <summary>One circuit as <c>GET /circuits</c> shows it; the CLI reads the same type back.</summary>
/// <param name="BytesUp">Client to upstream.</param>
/// <param name="State">The wire name: <c>connecting|established|half-closed|handing-over|closed|lost</c>.</param>
/// <param name="OpenedAt">UTC.</param>
/// <param name="LastActivity">UTC, last byte moved in either direction.</param>
public record CircuitView(
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
        entry.LastActivity.UtcDateTime)
    {
        Moves = entry.Moves,
        MovedAt = entry.MovedAt?.UtcDateTime,
    };

    /// <summary>How many times a handover moved the circuit between nodes (0: it runs where it was opened).</summary>
    public int Moves { get; init; }

    /// <summary>UTC, when it last arrived on this node in a handover; absent for a circuit that never moved.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTime? MovedAt { get; init; }
}

/// <summary>
/// One circuit as <c>GET /circuits/{id}</c> shows it: the fields of <see cref="CircuitView"/>
/// (inherited, so the two bodies cannot drift apart) and the kernel's TCP_INFO of both sockets.
/// </summary>
public sealed record CircuitDetailView : CircuitView
{
    private CircuitDetailView(CircuitView circuit, CircuitTcpInfo tcpInfo)
        : base(circuit)
    {
        TcpInfo = tcpInfo;
    }

    /// <summary>Last in the body, after the inherited fields (System.Text.Json writes a derived type's own properties first).</summary>
    [JsonPropertyOrder(1)]
    public CircuitTcpInfo TcpInfo { get; }

    public static new CircuitDetailView From(CircuitEntry entry) => new(
        CircuitView.From(entry),
        new CircuitTcpInfo(TcpInfoView.Read(entry.ClientSocket), TcpInfoView.Read(entry.UpstreamSocket)));
}

/// <summary>TCP_INFO of the circuit's two sockets; a side is null when its socket does not exist or has closed.</summary>
public sealed record CircuitTcpInfo(TcpInfoView? Client, TcpInfoView? Upstream);

/// <summary>What an operator reads from TCP_INFO (linux/tcp.h <c>struct tcp_info</c>).</summary>
/// <param name="State">The kernel's TCP state, e.g. <c>established</c>, <c>fin-wait2</c>.</param>
/// <param name="RttMicros">Smoothed round-trip time.</param>
/// <param name="Cwnd">Congestion window, in segments.</param>
/// <param name="Mss">Send MSS in bytes.</param>
/// <param name="Retransmits">Unrecovered RTO timeouts in a row.</param>
/// <param name="TotalRetrans">Segments retransmitted over the connection's life.</param>
/// <param name="Unacked">Segments sent and not yet acknowledged.</param>
public sealed record TcpInfoView(
    string State,
    uint RttMicros,
    uint RttVarMicros,
    uint Cwnd,
    uint Ssthresh,
    uint Mss,
    uint Pmtu,
    int Retransmits,
    uint TotalRetrans,
    uint Unacked,
    uint Lost,
    ulong? BytesAcked,
    ulong? BytesReceived)
{
    public static TcpInfoView? Read(System.Net.Sockets.Socket? socket)
    {
        if (socket is null)
        {
            return null;
        }

        TcpInfoSnapshot? info;
        try
        {
            info = SocketTuner.ReadTcpInfo(socket);
        }
        catch (ObjectDisposedException)
        {
            // The circuit closed between the table lookup and this read.
            return null;
        }

        return info is null
            ? null
            : new TcpInfoView(StateName(info.State), info.RttMicros, info.RttVarMicros, info.SendCwnd, info.SendSsthresh,
                info.SendMss, info.Pmtu, info.Retransmits, info.TotalRetrans, info.Unacked, info.Lost, info.BytesAcked,
                info.BytesReceived);
    }

    private static string StateName(KernelTcpState state) => state switch
    {
        KernelTcpState.Established => "established",
        KernelTcpState.SynSent => "syn-sent",
        KernelTcpState.SynReceived => "syn-received",
        KernelTcpState.FinWait1 => "fin-wait1",
        KernelTcpState.FinWait2 => "fin-wait2",
        KernelTcpState.TimeWait => "time-wait",
        KernelTcpState.Close => "close",
        KernelTcpState.CloseWait => "close-wait",
        KernelTcpState.LastAck => "last-ack",
        KernelTcpState.Listen => "listen",
        KernelTcpState.Closing => "closing",
        KernelTcpState.NewSynReceived => "new-syn-received",
        _ => "unknown",
    };
}

/// <summary>Body of <c>DELETE /circuits/{id}</c>: the circuit is being reset with <paramref name="Reason"/>.</summary>
public sealed record CircuitAbortResponse(long Id, string Reason);

/// <summary>One route as <c>GET /routes</c> shows it.</summary>
/// <param name="Listen">The bound endpoint (the real port when 0 was configured).</param>
/// <param name="State"><c>listening</c>, or <c>draining</c> once <c>POST /routes/{name}/drain</c> has stopped its accepts.</param>
/// <param name="Active">Circuits open now.</param>
/// <param name="Total">Circuits started since the node started.</param>
/// <param name="BytesUp">Client to upstream, closed and open circuits.</param>
/// <param name="Balance"><c>round-robin</c> or <c>least-circuits</c>.</param>
/// <param name="Members">The upstream pool's members and their health.</param>
public sealed record RouteView(
    string Name,
    string Listen,
    string Upstream,
    string State,
    long Active,
    long Total,
    long BytesUp,
    long BytesDown,
    string Balance,
    IReadOnlyList<UpstreamMemberView> Members);

/// <summary>One member of a route's upstream pool, as <c>GET /routes</c> shows it.</summary>
/// <param name="State"><c>up</c> or <c>down</c>.</param>
/// <param name="Active">Circuits open or connecting to it now.</param>
/// <param name="ConnectFailures">Failed connects since the route (re)started.</param>
/// <param name="Problem">Why it last went down, or null.</param>
/// <param name="ChangedAt">UTC, when it last changed state, or null.</param>
public sealed record UpstreamMemberView(
    string Address,
    string State,
    int Active,
    long ConnectFailures,
    string? Problem,
    DateTime? ChangedAt);

/// <summary>Body of <c>POST /reload</c> when the new config was applied.</summary>
/// <param name="RestartNeeded">Config sections that changed but need a restart (not applied).</param>
public sealed record ReloadResponse(
    string Status,
    string Summary,
    IReadOnlyList<string> Added,
    IReadOnlyList<string> Removed,
    IReadOnlyList<string> Changed,
    IReadOnlyList<string> Rebound,
    IReadOnlyList<string> RestartNeeded);

/// <summary>Body of <c>POST /routes/{name}/drain</c>.</summary>
public sealed record RouteDrainResponse(string Route, string State);

/// <summary>Body of <c>GET|PUT /loglevel</c>: <c>{"level":"Information"}</c>, a Serilog level name.</summary>
public sealed record LogLevelBody(string? Level);

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
[JsonSerializable(typeof(CircuitDetailView))]
[JsonSerializable(typeof(CircuitAbortResponse))]
[JsonSerializable(typeof(IReadOnlyList<RouteView>))]
[JsonSerializable(typeof(RouteDrainResponse))]
[JsonSerializable(typeof(ReloadResponse))]
[JsonSerializable(typeof(LogLevelBody))]
[JsonSerializable(typeof(ClusterMembersResponse))]
[JsonSerializable(typeof(ClusterMemberView))]
[JsonSerializable(typeof(ClusterHttpMessage))]
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
