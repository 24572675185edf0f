using System.Net;
using System.Text.RegularExpressions;

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

    internal static readonly KeySchema Schema = KeySchema.Leaves(
        "enabled", "vip", "vip-device", "mode", "publish-interval", "state-shards", "lost-retention");

    internal const int MaxStateShards = 1024;
}

/// <summary>A virtual IP with its prefix length, as <c>ip addr add</c> takes it.</summary>
public sealed record VirtualIp(IPAddress Address, int PrefixLength)
{
    public override string ToString() => $"{Address}/{PrefixLength}";
}

public sealed partial record RelaySettings
{
    /// <summary>
    /// <c>relay.cluster</c>. An init property rather than a constructor parameter, so the
    /// settings every test and tool builds by hand stay a single appliance.
    /// </summary>
    public ClusterSettings Cluster { get; init; } = ClusterSettings.Off;

    private static ClusterSettings ReadCluster(ConfigReader r)
    {
        var enabled = r.Switch("enabled");
        var modeText = r.String("mode").Trim();
        var mode = modeText.ToLowerInvariant() switch
        {
            "active-standby" => ClusterMode.ActiveStandby,
            "active-active" => ClusterMode.ActiveActive,
            _ => throw new RelayConfigException(r.KeyPath("mode"), modeText, "must be active-standby or active-active"),
        };

        var vipText = r.String("vip").Trim();
        VirtualIp? vip = null;
        if (vipText.Length > 0)
        {
            var slash = vipText.IndexOf('/');
            if (slash < 0 || !IPAddress.TryParse(vipText.AsSpan(0, slash), out var address)
                || !int.TryParse(vipText.AsSpan(slash + 1), System.Globalization.NumberStyles.None,
                    System.Globalization.CultureInfo.InvariantCulture, out var prefix)
                || prefix < 1 || prefix > (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128))
            {
                throw new RelayConfigException(r.KeyPath("vip"), vipText,
                    "must be an address with its prefix length, like \"198.18.0.10/24\", or \"\" for none");
            }

            vip = new VirtualIp(address, prefix);
        }

        var device = r.String("vip-device").Trim();
        if (device.Length > 0 && !DeviceName().IsMatch(device))
        {
            throw new RelayConfigException(r.KeyPath("vip-device"), device,
                "must be a network device name like eth0 (1 to 15 letters, digits, '.', '_', '-' or '@')");
        }

        if (vip is not null && device.Length == 0)
        {
            throw new RelayConfigException(r.KeyPath("vip-device"), device, $"must name the device that holds the VIP {vip}");
        }

        if (vip is null && device.Length > 0)
        {
            throw new RelayConfigException(r.KeyPath("vip"), vipText, $"is empty, but vip-device is \"{device}\": set both or neither");
        }

        return new ClusterSettings(
            enabled,
            mode,
            vip,
            device.Length == 0 ? null : device,
            r.Duration("publish-interval", TimeSpan.FromMinutes(1)),
            r.Int("state-shards", 1, ClusterSettings.MaxStateShards),
            r.Duration("lost-retention", ConfigReader.MaxDuration));
    }

    // IFNAMSIZ is 16 with the terminating NUL; '/' and whitespace are never valid.
    [GeneratedRegex("^[A-Za-z0-9._@-]{1,15}$")]
    private static partial Regex DeviceName();
}
