using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Relay.Actors.Circuits.ProxyProtocol;

namespace Relay.Actors.Configuration;

/// <summary>
/// INTERNAL API. Reads the admission keys: access lists, limits and the PROXY protocol
/// (route level, defaulted from <c>relay.defaults</c>), and the node-wide <c>relay.limits</c>.
/// </summary>
internal static class AdmissionSettingsReader
{
    /// <summary>The largest count or rate a limit may name; beyond it, use off.</summary>
    internal const int MaxLimit = 10_000_000;

    private const string CidrExample = "[\"198.18.0.0/15\", \"2001:db8::/32\"]";

    /// <summary>The keys of a set of limits: a route's, <c>relay.defaults</c>' and <c>relay.limits</c>.</summary>
    internal static readonly string[] LimitKeys = ["max-circuits", "max-circuits-per-source", "accept-rate"];

    /// <summary>The admission keys a route may set, and <c>relay.defaults</c> may default.</summary>
    internal static readonly (string Key, KeySchema? Child)[] Keys =
    [
        ("allow", null), ("deny", null), ("max-circuits", null), ("max-circuits-per-source", null), ("accept-rate", null),
        ("proxy-protocol", null), ("accept-proxy-protocol", null), ("proxy-header-timeout", null),
    ];

    public static RouteSettings WithAdmission(RouteSettings route, ConfigReader r)
    {
        var admission = Read(r);
        return route with { Access = admission.Access, Limits = admission.Limits, ProxyProtocol = admission.ProxyProtocol };
    }

    public static AdmissionDefaults Read(ConfigReader r)
    {
        var access = new AccessList(ReadNetworks(r, "allow"), ReadNetworks(r, "deny"));
        return new AdmissionDefaults(access.IsOpen ? AccessList.Open : access, ReadLimits(r), ReadProxyProtocol(r));
    }

    public static LimitSettings ReadLimits(ConfigReader r)
    {
        var limits = new LimitSettings(
            LimitOrOff(r, "max-circuits"),
            LimitOrOff(r, "max-circuits-per-source"),
            LimitOrOff(r, "accept-rate"));
        return limits == LimitSettings.None ? LimitSettings.None : limits;
    }

    private static int? LimitOrOff(ConfigReader r, string key)
    {
        var raw = r.Scalar(key).Trim();
        if (ConfigReader.IsOffWord(raw))
        {
            return null;
        }

        if (!int.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value < 1 || value > MaxLimit)
        {
            throw new RelayConfigException(r.KeyPath(key), raw, $"must be off or a whole number from 1 to {MaxLimit}");
        }

        return value;
    }

    private static ProxyProtocolSettings ReadProxyProtocol(ConfigReader r)
    {
        var raw = r.Scalar("proxy-protocol").Trim();
        var send = ConfigReader.IsOffWord(raw) ? ProxyProtocolVersion.Off
            : raw.Equals("v1", StringComparison.OrdinalIgnoreCase) ? ProxyProtocolVersion.V1
            : raw.Equals("v2", StringComparison.OrdinalIgnoreCase) ? ProxyProtocolVersion.V2
            : throw new RelayConfigException(r.KeyPath("proxy-protocol"), raw, "must be off, v1 or v2");
        var accept = r.Switch("accept-proxy-protocol");
        var timeout = r.Duration("proxy-header-timeout", ConfigReader.MaxDuration);
        var settings = new ProxyProtocolSettings(send, accept, timeout);
        return settings == ProxyProtocolSettings.Off ? ProxyProtocolSettings.Off : settings;
    }

    private static IReadOnlyList<IPNetwork> ReadNetworks(ConfigReader r, string key)
    {
        var texts = r.StringList(key, CidrExample);
        var networks = new List<IPNetwork>(texts.Count);
        foreach (var text in texts)
        {
            if (!TryParseNetwork(text, out var network, out var problem))
            {
                throw new RelayConfigException(r.KeyPath(key), text, problem);
            }

            networks.Add(network);
        }

        return networks;
    }

    /// <summary>
    /// "a.b.c.d/n", "v6/n", or a bare address (a single host). Host bits beyond the prefix
    /// are an error, not silently cleared: "10.1.2.3/8" is more likely a typo than a wish for
    /// all of 10/8. IPv4-mapped IPv6 networks (::ffff:a.b.c.d/96+n) are stored as the IPv4
    /// network they denote, because IPv4 clients are matched as IPv4.
    /// </summary>
    internal static bool TryParseNetwork(string text, out IPNetwork network, out string problem)
    {
        network = default;
        var trimmed = text.Trim();
        var slash = trimmed.IndexOf('/');
        var addressText = slash < 0 ? trimmed : trimmed[..slash];
        if (!TryParseStrictAddress(addressText, out var address))
        {
            problem = $"is not an address or network: use CIDR like {CidrExample}";
            return false;
        }

        var bits = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        var prefix = bits;
        if (slash >= 0 && (!int.TryParse(trimmed[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out prefix) || prefix > bits))
        {
            problem = $"has an invalid prefix length: it must be 0 to {bits}";
            return false;
        }

        var masked = Mask(address, prefix);
        if (!masked.Equals(address))
        {
            problem = $"has host bits set beyond /{prefix}; the network is {masked}/{prefix}";
            return false;
        }

        if (address.IsIPv4MappedToIPv6 && prefix >= 96)
        {
            address = address.MapToIPv4();
            prefix -= 96;
        }

        network = new IPNetwork(address, prefix);
        problem = "";
        return true;
    }

    private static bool TryParseStrictAddress(string text, out IPAddress address)
    {
        address = IPAddress.None;
        if (text.Contains(':'))
        {
            // IPv6; a zone (%eth0) names an interface, not a network.
            return !text.Contains('%') && IPAddress.TryParse(text, out address!) && address.AddressFamily == AddressFamily.InterNetworkV6;
        }

        // Dotted quads only: IPAddress.TryParse would take "10" or "10.1" as abbreviations.
        var parts = text.Split('.');
        return parts.Length == 4
               && parts.All(p => p.Length is > 0 and <= 3 && p.All(char.IsAsciiDigit) && int.Parse(p, CultureInfo.InvariantCulture) <= 255)
               && IPAddress.TryParse(text, out address!);
    }

    private static IPAddress Mask(IPAddress address, int prefix)
    {
        var bytes = address.GetAddressBytes();
        for (var i = 0; i < bytes.Length; i++)
        {
            var keep = Math.Clamp(prefix - (i * 8), 0, 8);
            bytes[i] &= (byte)(0xFF << (8 - keep));
        }

        return new IPAddress(bytes);
    }
}
