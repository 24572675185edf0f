using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Relay.Actors.Configuration;

/// <summary>
/// INTERNAL API. Parses the address forms of the configuration and the CLI. Each method
/// returns a problem sentence instead of throwing, so the caller can name its own key
/// (<c>relay.routes[0].listen</c> or <c>--route</c>).
/// </summary>
internal static partial class AddressParser
{
    public const string ListenForms = "a.b.c.d:port, [v6]:port or *:port";

    public const string UpstreamForms = "host:port or [v6]:port";

    /// <summary>A listen address: an IP literal (never a name, so what is bound is unambiguous).</summary>
    public static bool TryParseListen(string text, out IPEndPoint endpoint, out string problem)
    {
        endpoint = null!;
        if (!TrySplit(text, ListenForms, out var host, out var bracketed, out var portText, out problem))
        {
            return false;
        }

        if (!TryParsePort(portText, 0, out var port, out problem))
        {
            return false;
        }

        IPAddress? address;
        if (bracketed)
        {
            if (!IPAddress.TryParse(host, out address) || address.AddressFamily != AddressFamily.InterNetworkV6)
            {
                problem = $"[{host}] is not an IPv6 address (expected {ListenForms})";
                return false;
            }
        }
        else if (host.Length == 0 || host == "*")
        {
            address = IPAddress.Any;
        }
        else if (!DottedQuad().IsMatch(host) || !IPAddress.TryParse(host, out address))
        {
            problem = $"'{host}' is not an IPv4 address; listen takes an IP literal ({ListenForms})";
            return false;
        }

        endpoint = new IPEndPoint(address, port);
        return true;
    }

    /// <summary>An upstream: an IP literal or a DNS name, with a port from 1 to 65535.</summary>
    public static bool TryParseUpstream(string text, out UpstreamAddress upstream, out string problem)
    {
        upstream = null!;
        if (!TrySplit(text, UpstreamForms, out var host, out var bracketed, out var portText, out problem))
        {
            return false;
        }

        if (!TryParsePort(portText, 1, out var port, out problem))
        {
            return false;
        }

        if (bracketed)
        {
            if (!IPAddress.TryParse(host, out var v6) || v6.AddressFamily != AddressFamily.InterNetworkV6)
            {
                problem = $"[{host}] is not an IPv6 address (expected {UpstreamForms})";
                return false;
            }
        }
        else if (host.Length == 0 || host == "*")
        {
            problem = $"needs a host to connect to (expected {UpstreamForms})";
            return false;
        }
        else if (NumericName().IsMatch(host))
        {
            // All digits and dots: meant as IPv4, and IPAddress.TryParse would accept "10.1" too.
            if (!DottedQuad().IsMatch(host) || !IPAddress.TryParse(host, out _))
            {
                problem = $"'{host}' is not an IPv4 address";
                return false;
            }
        }
        else if (!HostName().IsMatch(host))
        {
            problem = $"'{host}' is not a valid host name or IP address";
            return false;
        }

        upstream = new UpstreamAddress(host, port);
        return true;
    }

    /// <summary>The text of an endpoint as the config accepts it back: 0.0.0.0:7000, [::1]:7000.</summary>
    public static string Format(IPEndPoint endpoint) =>
        endpoint.AddressFamily == AddressFamily.InterNetworkV6
            ? $"[{endpoint.Address}]:{endpoint.Port.ToString(CultureInfo.InvariantCulture)}"
            : $"{endpoint.Address}:{endpoint.Port.ToString(CultureInfo.InvariantCulture)}";

    private static bool TrySplit(string text, string forms, out string host, out bool bracketed, out string port, out string problem)
    {
        host = port = problem = "";
        bracketed = false;
        text = text.Trim();
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']');
            if (close < 0 || close + 1 >= text.Length || text[close + 1] != ':')
            {
                problem = $"expected {forms}";
                return false;
            }

            bracketed = true;
            host = text[1..close];
            port = text[(close + 2)..];
            return true;
        }

        var colon = text.LastIndexOf(':');
        if (colon < 0)
        {
            problem = $"needs a port (expected {forms})";
            return false;
        }

        if (text.IndexOf(':') != colon)
        {
            problem = $"an IPv6 address needs brackets, like [::1]:7000 (expected {forms})";
            return false;
        }

        host = text[..colon];
        port = text[(colon + 1)..];
        return true;
    }

    private static bool TryParsePort(string text, int min, out int port, out string problem)
    {
        problem = "";
        if (text.Length is 0 or > 5 || !text.All(char.IsAsciiDigit)
            || !int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out port)
            || port < min || port > 65535)
        {
            port = 0;
            problem = $"port '{text}' must be a number from {min} to 65535";
            return false;
        }

        return true;
    }

    [GeneratedRegex(@"^\d{1,3}(\.\d{1,3}){3}$")]
    private static partial Regex DottedQuad();

    [GeneratedRegex(@"^[\d.]+$")]
    private static partial Regex NumericName();

    // RFC 1123 labels; '_' is tolerated because service-discovery names use it.
    [GeneratedRegex(@"^(?=.{1,253}\.?$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$")]
    private static partial Regex HostName();
}
