using System.Net;

namespace Relay.Actors.Configuration;

/// <summary>How a cluster of appliances shares the service.</summary>
public enum ClusterMode
{
    /// <summary>One node (the oldest member) binds the routes and holds the VIP; the others stand by.</summary>
    ActiveStandby,

    /// <summary>Every node binds the routes; the oldest member still holds the VIP, if one is configured.</summary>
    ActiveActive,
}

/// <summary>
/// <c>relay.cluster</c>: whether this node joins an Akka cluster of appliances, and how the
/// service and its virtual IP move between them. <see cref="Off"/> is a single appliance.
/// </summary>
/// <param name="Vip">The virtual IP in CIDR form (<c>198.18.0.10/24</c>), or null for none.</param>
/// <param name="VipDevice">The device the VIP is added to; set exactly when <see cref="Vip"/> is.</param>
/// <param name="PublishInterval">How often this node publishes its circuit table to the others.</param>
/// <param name="StateShards">How many DistributedData keys a node's circuit table is split into.</param>
/// <param name="LostRetention">How long the circuits of a lost node stay listed as <c>lost</c>.</param>
public sealed record ClusterSettings(
    bool Enabled,
    ClusterMode Mode,
    VirtualIp? Vip,
    string? VipDevice,
    TimeSpan PublishInterval,
    int StateShards,
    TimeSpan LostRetention)
{
    /// <summary>Clustering off: the relay.conf defaults.</summary>
    public static readonly ClusterSettings Off = new(false, ClusterMode.ActiveStandby, null, null,
        TimeSpan.FromSeconds(1), 64, TimeSpan.FromHours(1));

    internal const int MaxStateShards = 1024;

    /// <summary>
    /// The egress VIP (<c>egress-vip</c>): a second floating address, on the upstream-side
    /// network, that the service owner holds with the VIP and that the upstream connections
    /// of forward routes are bound to, so the server's side of each circuit can move with it.
    /// Null for none; never with <see cref="ClusterMode.ActiveActive"/>.
    /// </summary>
    public VirtualIp? EgressVip { get; init; }

    /// <summary>The device the egress VIP is added to; set exactly when <see cref="EgressVip"/> is.</summary>
    public string? EgressVipDevice { get; init; }

    /// <summary><c>relay.cluster.handover</c>: moving established circuits to another node.</summary>
    public HandoverSettings Handover { get; init; } = HandoverSettings.Default;

    /// <summary>
    /// The addresses the service owner holds, the VIP first: added, announced and removed
    /// together. Empty when neither VIP is configured.
    /// </summary>
    public IReadOnlyList<FloatingAddress> FloatingAddresses =>
        (Vip, EgressVip) switch
        {
            (null, null) => [],
            ({ } vip, null) => [new FloatingAddress(FloatingAddressKind.Service, vip, VipDevice!)],
            (null, { } egress) => [new FloatingAddress(FloatingAddressKind.Egress, egress, EgressVipDevice!)],
            ({ } vip, { } egress) =>
            [
                new FloatingAddress(FloatingAddressKind.Service, vip, VipDevice!),
                new FloatingAddress(FloatingAddressKind.Egress, egress, EgressVipDevice!),
            ],
        };
}

/// <summary>
/// <c>relay.cluster.handover</c>: how the owner hands its established circuits to another node.
/// </summary>
/// <param name="OnLeave">Whether a graceful leave (SIGTERM) of an owner with a standby Up hands its circuits over first.</param>
/// <param name="Timeout">How long the old node waits for the target's acknowledgement before it rolls back.</param>
/// <param name="GuardTimeout">How long the moved circuits' 4-tuples stay dropped on the old node after a handover.</param>
/// <param name="BatchSize">How many circuits are frozen and shipped per batch.</param>
/// <param name="Waves">
/// 2: the busy circuits move before the commit and the quiet ones right after it; 1: every
/// circuit before the commit, as a relay that predates waves does (both ends must take two
/// for a handover to use them).
/// </param>
public sealed record HandoverSettings(bool OnLeave, TimeSpan Timeout, TimeSpan GuardTimeout, int BatchSize, int Waves = 2)
{
    /// <summary>The relay.conf defaults.</summary>
    public static readonly HandoverSettings Default = new(true, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(60), 256, 2);

    internal static readonly TimeSpan MaxTimeout = TimeSpan.FromMinutes(1);
    internal static readonly TimeSpan MaxGuardTimeout = TimeSpan.FromHours(1);
    internal const int MaxBatchSize = 65536;
}

/// <summary>A virtual IP with its prefix length, as <c>ip addr add</c> takes it.</summary>
public sealed record VirtualIp(IPAddress Address, int PrefixLength)
{
    public override string ToString() => $"{Address}/{PrefixLength}";
}

/// <summary>Which of the owner's floating addresses an address is.</summary>
public enum FloatingAddressKind
{
    /// <summary><c>relay.cluster.vip</c>: the address clients connect to.</summary>
    Service,

    /// <summary><c>relay.cluster.egress-vip</c>: the address upstream connections come from.</summary>
    Egress,
}

/// <summary>A floating address the service owner holds: which one, the address, and its device.</summary>
public sealed record FloatingAddress(FloatingAddressKind Kind, VirtualIp Address, string Device)
{
    /// <summary>"VIP" or "egress VIP", for log lines.</summary>
    public string Name => Kind == FloatingAddressKind.Service ? "VIP" : "egress VIP";

    /// <summary>The key that names the device, for a problem with it.</summary>
    public string DeviceKey => Kind == FloatingAddressKind.Service ? "relay.cluster.vip-device" : "relay.cluster.egress-vip-device";

    public override string ToString() => $"{Name} {Address} on {Device}";
}
