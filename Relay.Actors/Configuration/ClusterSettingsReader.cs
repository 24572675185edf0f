using System.Net;
using System.Text.RegularExpressions;

namespace Relay.Actors.Configuration;

/// <summary>INTERNAL API. Reads <c>relay.cluster</c> into <see cref="ClusterSettings"/>.</summary>
internal static partial class ClusterSettingsReader
{
    internal static readonly KeySchema Schema = KeySchema.Leaves(
        "enabled", "vip", "vip-device", "mode", "publish-interval", "state-shards", "lost-retention");

    public static ClusterSettings Read(ConfigReader r)
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
