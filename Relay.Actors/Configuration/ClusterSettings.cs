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
}

/// <summary>A virtual IP with its prefix length, as <c>ip addr add</c> takes it.</summary>
public sealed record VirtualIp(IPAddress Address, int PrefixLength)
{
    public override string ToString() => $"{Address}/{PrefixLength}";
}
