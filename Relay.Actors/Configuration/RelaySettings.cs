using System.Net;
using System.Text.RegularExpressions;
using Akka.Configuration;
using Relay.Actors.Upstreams;

namespace Relay.Actors.Configuration;

/// <summary>
/// The whole validated configuration of one relay node, read once from HOCON by
/// <see cref="RelaySettings.Create"/>. Immutable: a reload builds a new instance.
/// (Partial only for the generated route-name regex.)
/// </summary>
public sealed partial record RelaySettings(
    IReadOnlyList<RouteSettings> Routes,
    CircuitSettings Defaults,
    DispatcherSettings Dispatchers,
    ManagementSettings Management)
{
    /// <summary>Node-wide admission limits over all routes (<c>relay.limits</c>).</summary>
    public LimitSettings Limits { get; init; } = LimitSettings.None;

    /// <summary>The admission keys of <c>relay.defaults</c> (allow, deny, limits, PROXY protocol).</summary>
    public AdmissionDefaults DefaultAdmission { get; init; } = AdmissionDefaults.Open;

    public static readonly TimeSpan DefaultShutdownGrace = TimeSpan.FromSeconds(30);

    /// <summary>
    /// On SIGTERM or SIGINT, how long open circuits may run to their end after the listeners
    /// have closed; the rest are then reset with reason <c>shutdown</c>.
    /// </summary>
    public TimeSpan ShutdownGrace { get; init; } = DefaultShutdownGrace;

    /// <summary>
    /// <c>relay.cluster</c>. An init property rather than a constructor parameter, so the
    /// settings every test and tool builds by hand stay a single appliance.
    /// </summary>
    public ClusterSettings Cluster { get; init; } = ClusterSettings.Off;

    /// <summary>Route names: what logs, metrics and management URLs can carry without escaping.</summary>
    public const string RouteNamePattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";

    /// <summary>
    /// Reads and validates <c>relay.*</c>. <paramref name="config"/> normally comes from
    /// <see cref="RelayConfigLoader.Load"/>; the embedded defaults are added as the last
    /// fallback here too, so a config holding only some keys is complete.
    /// </summary>
    /// <exception cref="RelayConfigException">Any value that cannot be used; the message names its key path.</exception>
    public static RelaySettings Create(Config config) => RelaySettingsReader.Read(config);

    internal static bool IsValidRouteName(string name) => RouteName().IsMatch(name);

    [GeneratedRegex(RouteNamePattern)]
    private static partial Regex RouteName();
}

/// <summary>One port-forward route: accept on <see cref="Listen"/>, relay to a member of <see cref="Upstreams"/>.</summary>
public sealed record RouteSettings(
    string Name,
    IPEndPoint Listen,
    UpstreamPoolSettings Upstreams,
    int Backlog,
    CircuitSettings Circuit)
{
    /// <summary>
    /// Set for a <c>mode = transparent</c> route: each circuit connects to its connection's
    /// original destination, and <see cref="Upstream"/> is only
    /// <see cref="TransparentSettings.OriginalDestination"/>. Null for a forward route.
    /// </summary>
    public TransparentSettings? Transparent { get; init; }

    /// <summary>Which clients may connect (<c>allow</c>, <c>deny</c>).</summary>
    public AccessList Access { get; init; } = AccessList.Open;

    /// <summary>The route's own admission limits (<c>max-circuits</c>, ...).</summary>
    public LimitSettings Limits { get; init; } = LimitSettings.None;

    /// <summary>PROXY protocol headers sent to upstreams and expected from clients.</summary>
    public ProxyProtocolSettings ProxyProtocol { get; init; } = ProxyProtocolSettings.Off;
}

/// <summary>
/// Where a route's circuits connect. <see cref="Host"/> is an IP literal or a DNS name;
/// a name is resolved when each circuit connects, so DNS changes apply to new circuits.
/// </summary>
public sealed record UpstreamAddress(string Host, int Port)
{
    public override string ToString() => Port == 0 ? Host : Host.Contains(':') ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}

/// <summary>The per-circuit knobs. Every route has its own copy, defaulted from <c>relay.defaults</c>.</summary>
/// <param name="HalfClosedTimeout">
/// The inactivity limit once one direction has ended, or null (<c>off</c>) to leave a half-closed
/// circuit to <paramref name="IdleTimeout"/> like any other.
/// </param>
public sealed record CircuitSettings(
    TimeSpan ConnectTimeout,
    TimeSpan IdleTimeout,
    TimeSpan? HalfClosedTimeout,
    int WriteSize,
    int Window,
    SocketSideSettings ClientSide,
    SocketSideSettings UpstreamSide)
{
    /// <summary>How many write-size segments may be in flight per direction (at least one).</summary>
    public int SegmentsPerDirection => Math.Max(1, Window / WriteSize);

    /// <summary>
    /// What becomes of a null circuit, one the client ended (FIN or reset) before a byte moved
    /// either way, as a balancer's TCP check does (<c>null-circuits</c>).
    /// </summary>
    public NullCircuits NullCircuits { get; init; } = NullCircuits.Quiet;

    /// <summary>
    /// Whether a direction whose read fills a whole <see cref="WriteSize"/> (a bulk transfer)
    /// goes on with splice(2) through a pipe, so its bytes stay in the kernel (<c>splice</c>).
    /// </summary>
    public bool Splice { get; init; } = true;
}

/// <summary>The values of <c>null-circuits</c>.</summary>
public enum NullCircuits
{
    /// <summary>Closed at Debug and counted in <c>relay_circuits_null_total</c>, not as errors.</summary>
    Quiet,

    /// <summary>Like any circuit: closed at Information, a reset counted as an error.</summary>
    Log,
}

/// <summary>
/// Socket options for one side of a circuit. <c>null</c> means "leave the kernel's choice":
/// for buffers that keeps Linux autotuning on (setting SO_RCVBUF/SO_SNDBUF turns it off).
/// </summary>
public sealed record SocketSideSettings(
    int? ReceiveBuffer,
    int? SendBuffer,
    bool NoDelay,
    int? MaxSegment,
    string? Congestion,
    KeepAliveSettings KeepAlive);

public sealed record KeepAliveSettings(bool Enabled, TimeSpan Idle, TimeSpan Interval, int Count);

/// <summary>How many per-core dispatchers to run and whether their threads are pinned.</summary>
public sealed record DispatcherSettings(int Cores, bool Pin, int Throughput);

/// <summary>The management HTTP endpoint; <see cref="Endpoint"/> null means disabled.</summary>
public sealed record ManagementSettings(IPEndPoint? Endpoint, string Token);
