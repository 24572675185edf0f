using System.Net;
using System.Text.RegularExpressions;

namespace Relay.Actors.Configuration;

/// <summary>INTERNAL API. Reads <c>relay.cluster</c> into <see cref="ClusterSettings"/>.</summary>
internal static partial class ClusterSettingsReader
{
    internal static readonly KeySchema Schema = KeySchema.Leaves(
            "enabled", "vip", "vip-device", "egress-vip", "egress-vip-device", "mode", "publish-interval", "state-shards", "lost-retention")
        .With(("handover", KeySchema.Leaves("on-leave", "timeout", "guard-timeout", "batch-size", "waves")));

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

        var (vip, device) = ReadAddress(r, "vip", "VIP", "198.18.0.10/24");
        var (egress, egressDevice) = ReadAddress(r, "egress-vip", "egress VIP", "198.18.1.10/24");
        if (egress is not null)
        {
            if (mode == ClusterMode.ActiveActive)
            {
                throw new RelayConfigException(r.KeyPath("egress-vip"), egress.ToString(),
                    "cannot be used with mode = active-active: only the owner holds the egress VIP, so the upstream connections of the other active nodes could not be bound to it");
            }

            if (vip is not null && vip.Address.Equals(egress.Address))
            {
                throw new RelayConfigException(r.KeyPath("egress-vip"), egress.ToString(),
                    "is the VIP's address: the egress VIP must be a second address, on the upstream-side network");
            }
        }

        return new ClusterSettings(
            enabled,
            mode,
            vip,
            device,
            r.Duration("publish-interval", TimeSpan.FromMinutes(1)),
            r.Int("state-shards", 1, ClusterSettings.MaxStateShards),
            r.Duration("lost-retention", ConfigReader.MaxDuration))
        {
            EgressVip = egress,
            EgressVipDevice = egressDevice,
            Handover = ReadHandover(r),
        };
    }

    /// <summary>
    /// <paramref name="key"/> (an address in CIDR form, or "" for none) and <c>KEY-device</c>,
    /// which must be set exactly when the address is.
    /// </summary>
    private static (VirtualIp? Address, string? Device) ReadAddress(ConfigReader r, string key, string name, string example)
    {
        var text = r.String(key).Trim();
        VirtualIp? address = null;
        if (text.Length > 0)
        {
            var slash = text.IndexOf('/');
            if (slash < 0 || !IPAddress.TryParse(text.AsSpan(0, slash), out var ip)
                || !int.TryParse(text.AsSpan(slash + 1), System.Globalization.NumberStyles.None,
                    System.Globalization.CultureInfo.InvariantCulture, out var prefix)
                || prefix < 1 || prefix > (ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128))
            {
                throw new RelayConfigException(r.KeyPath(key), text,
                    $"must be an address with its prefix length, like \"{example}\", or \"\" for none");
            }

            address = new VirtualIp(ip, prefix);
        }

        var deviceKey = key + "-device";
        var device = r.String(deviceKey).Trim();
        if (device.Length > 0 && !DeviceName().IsMatch(device))
        {
            throw new RelayConfigException(r.KeyPath(deviceKey), device,
                "must be a network device name like eth0 (1 to 15 letters, digits, '.', '_', '-' or '@')");
        }

        if (address is not null && device.Length == 0)
        {
            throw new RelayConfigException(r.KeyPath(deviceKey), device, $"must name the device that holds the {name} {address}");
        }

        if (address is null && device.Length > 0)
        {
            throw new RelayConfigException(r.KeyPath(key), text, $"is empty, but {deviceKey} is \"{device}\": set both or neither");
        }

        return (address, device.Length == 0 ? null : device);
    }

    private static HandoverSettings ReadHandover(ConfigReader r)
    {
        var onLeave = r.Switch("handover.on-leave");
        var timeout = r.Duration("handover.timeout", HandoverSettings.MaxTimeout);
        var guard = r.Duration("handover.guard-timeout", HandoverSettings.MaxGuardTimeout);
        if (guard <= timeout)
        {
            // The old node drops the circuits' tuples from the freeze on: a guard that ended
            // before the target could acknowledge would let a late segment reach the old node's
            // listener, which answers it with a reset.
            throw new RelayConfigException(r.KeyPath("handover.guard-timeout"), r.String("handover.guard-timeout").Trim(),
                $"must be longer than handover.timeout ({ConfigReader.FormatDuration(timeout)}): the moved circuits' tuples must stay dropped on the old node until after the handover");
        }

        return new HandoverSettings(onLeave, timeout, guard, r.Int("handover.batch-size", 1, HandoverSettings.MaxBatchSize),
            r.Int("handover.waves", 1, Handover.HandoverProtocol.TwoWaves));
    }

    // IFNAMSIZ is 16 with the terminating NUL; '/' and whitespace are never valid.
    [GeneratedRegex("^[A-Za-z0-9._@-]{1,15}$")]
    private static partial Regex DeviceName();
}
