namespace Relay.Actors.Configuration;

/// <summary>
/// A route given on the command line as <c>[NAME@]LISTEN=UPSTREAM</c>, for example
/// <c>web@0.0.0.0:8080=198.18.1.2:80</c> or <c>[::1]:7000=[::1]:7001</c>. A comma-separated
/// list of upstreams makes a pool: <c>web@:8080=198.18.1.2:80,198.18.1.3:80</c>.
/// </summary>
/// <param name="Name">The route name, or null to be named by position (route-N).</param>
/// <param name="Listen">The listen address as written, already checked.</param>
/// <param name="Upstream">The upstream address (or comma-separated addresses) as written, already checked.</param>
public sealed record RouteSpec(string? Name, string Listen, string Upstream)
{
    public const string Form = "[NAME@]LISTEN=UPSTREAM[,UPSTREAM...], like web@0.0.0.0:8080=198.18.1.2:80";

    /// <exception cref="RelayConfigException">The spec is malformed; the key is <c>--route</c>.</exception>
    public static RouteSpec Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var text = spec.Trim();
        var equals = text.IndexOf('=');
        if (equals < 0 || text.IndexOf('=', equals + 1) >= 0)
        {
            throw Bad(spec, $"expected {Form}");
        }

        var left = text[..equals].Trim();
        var upstream = text[(equals + 1)..].Trim();
        string? name = null;
        var at = left.IndexOf('@');
        if (at >= 0)
        {
            name = left[..at].Trim();
            left = left[(at + 1)..].Trim();
            if (!RelaySettings.IsValidRouteName(name))
            {
                throw Bad(spec, $"route name '{name}' must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit");
            }
        }

        if (!AddressParser.TryParseListen(left, out _, out var problem))
        {
            throw Bad(spec, $"listen {problem}");
        }

        var members = upstream.Split(',').Select(m => m.Trim()).ToList();
        foreach (var member in members)
        {
            if (!AddressParser.TryParseUpstream(member, out _, out problem))
            {
                throw Bad(spec, $"upstream {problem}");
            }
        }

        return new RouteSpec(name, left, string.Join(",", members));
    }

    /// <summary>The route as a HOCON object, to be parsed into <c>relay.routes</c>.</summary>
    internal string ToHocon()
    {
        var name = Name is null ? "" : $"name = {HoconText.Quote(Name)}, ";
        var members = Upstream.Split(',');
        var upstream = members.Length == 1
            ? $"upstream = {HoconText.Quote(Upstream)}"
            : $"upstreams = [ {string.Join(", ", members.Select(HoconText.Quote))} ]";
        return $"{{ {name}listen = {HoconText.Quote(Listen)}, {upstream} }}";
    }

    private static RelayConfigException Bad(string spec, string problem) => new("--route", spec, problem);
}
