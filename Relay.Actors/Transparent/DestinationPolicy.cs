using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Relay.Actors.Transparent;

/// <summary>An inclusive range of TCP ports; a single port is a range of one.</summary>
public readonly record struct PortRange(int From, int To)
{
    public bool Contains(int port) => port >= From && port <= To;

    public override string ToString() =>
        From == To ? From.ToString(CultureInfo.InvariantCulture) : $"{From.ToString(CultureInfo.InvariantCulture)}-{To.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>"443" or "8000-8100", each port from 1 to 65535.</summary>
    public static bool TryParse(string text, out PortRange range)
    {
        range = default;
        text = text.Trim();
        var dash = text.IndexOf('-');
        var fromText = dash < 0 ? text : text[..dash].Trim();
        var toText = dash < 0 ? text : text[(dash + 1)..].Trim();
        if (!TryPort(fromText, out var from) || !TryPort(toText, out var to) || from > to)
        {
            return false;
        }

        range = new PortRange(from, to);
        return true;
    }

    private static bool TryPort(string text, out int port)
    {
        port = 0;
        return text.Length is > 0 and <= 5 && text.All(char.IsAsciiDigit)
            && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out port) && port is >= 1 and <= 65535;
    }
}

/// <summary>
/// Which original destinations a transparent route may connect to (<c>destinations { allow,
/// deny, ports }</c> of the route). A destination is allowed when its port is in
/// <see cref="Ports"/> (or that list is empty), its address is in one of <see cref="Allow"/>
/// (or that list is empty), and it is in none of <see cref="Deny"/>: deny wins, as in an
/// HAProxy or Envoy ACL that rejects first.
/// </summary>
public sealed record DestinationPolicy(IReadOnlyList<IPNetwork> Allow, IReadOnlyList<IPNetwork> Deny, IReadOnlyList<PortRange> Ports)
{
    /// <summary>No restriction: every destination is allowed (the loop guard still applies).</summary>
    public static readonly DestinationPolicy AllowAll = new([], [], []);

    /// <summary>
    /// Null when <paramref name="destination"/> may be connected to, otherwise the reason it
    /// may not, as one line for the log (<c>DestinationDenied</c>) and the close detail.
    /// </summary>
    public string? Check(IPEndPoint destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var address = Normalize(destination.Address);
        if (Ports.Count > 0 && !Ports.Any(p => p.Contains(destination.Port)))
        {
            return $"port {destination.Port.ToString(CultureInfo.InvariantCulture)} is not in destinations.ports [{string.Join(", ", Ports)}]";
        }

        foreach (var network in Deny)
        {
            if (network.Contains(address))
            {
                return $"{address} is in destinations.deny {network}";
            }
        }

        if (Allow.Count > 0 && !Allow.Any(n => n.Contains(address)))
        {
            return $"{address} is not in destinations.allow [{string.Join(", ", Allow)}]";
        }

        return null;
    }

    /// <summary>
    /// An IPv4 client of a dual-stack listener shows up as ::ffff:a.b.c.d; policies and the
    /// loop guard are written in IPv4, so they see the IPv4 address.
    /// </summary>
    public static IPAddress Normalize(IPAddress address) =>
        address.AddressFamily == AddressFamily.InterNetworkV6 && address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    /// <summary>
    /// A CIDR like "198.18.2.0/24" or "2001:db8::/32", or a bare address (a /32 or /128).
    /// Host bits must be zero: "198.18.2.1/24" is more likely a typo than a wish.
    /// </summary>
    public static bool TryParseNetwork(string text, out IPNetwork network, out string problem)
    {
        network = default;
        problem = "";
        text = text.Trim();
        var slash = text.IndexOf('/');
        var addressText = slash < 0 ? text : text[..slash];
        if (!IPAddress.TryParse(addressText, out var address) || (address.AddressFamily == AddressFamily.InterNetwork && addressText.Count(c => c == '.') != 3))
        {
            problem = $"'{text}' is not a CIDR like 198.18.2.0/24 or 2001:db8::/32";
            return false;
        }

        var max = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        var prefix = max;
        if (slash >= 0)
        {
            var prefixText = text[(slash + 1)..];
            if (prefixText.Length is 0 or > 3 || !prefixText.All(char.IsAsciiDigit)
                || !int.TryParse(prefixText, NumberStyles.None, CultureInfo.InvariantCulture, out prefix) || prefix > max)
            {
                problem = $"'{text}': the prefix length must be 0 to {max}";
                return false;
            }
        }

        var masked = new IPNetwork(Mask(address, prefix), prefix);
        if (!masked.BaseAddress.Equals(address))
        {
            problem = $"'{text}' has host bits set; the network is {masked}";
            return false;
        }

        network = masked;
        return true;
    }

    private static IPAddress Mask(IPAddress address, int prefix)
    {
        var bytes = address.GetAddressBytes();
        for (var i = 0; i < bytes.Length; i++)
        {
            var bits = Math.Clamp(prefix - (i * 8), 0, 8);
            bytes[i] &= (byte)(0xFF << (8 - bits));
        }

        return new IPAddress(bytes);
    }
}
