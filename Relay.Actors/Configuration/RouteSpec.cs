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

    public const string TransparentForm = "[NAME@]LISTEN, like gw@0.0.0.0:15001";

    /// <summary>A <c>--transparent</c> route: no upstream; each circuit goes to its original destination.</summary>
    public bool Transparent { get; init; }

    /// <summary>
    /// Parses <c>--transparent [NAME@]LISTEN</c> (interception redirect, no destination
    /// policy: a config file sets those).
    /// </summary>
    /// <exception cref="RelayConfigException">The spec is malformed; the key is <c>--transparent</c>.</exception>
    public static RouteSpec ParseTransparent(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var text = spec.Trim();
        if (text.Contains('='))
        {
            throw new RelayConfigException("--transparent", spec,
                $"a transparent route has no upstream (it relays to each connection's original destination): expected {TransparentForm}");
        }

        var (name, listen) = SplitName(spec, text, "--transparent");
        if (!AddressParser.TryParseListen(listen, out _, out var problem))
        {
            throw new RelayConfigException("--transparent", spec, $"listen {problem}");
        }

        return new RouteSpec(name, listen, "") { Transparent = true };
    }

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

        var upstream = text[(equals + 1)..].Trim();
        var (name, left) = SplitName(spec, text[..equals].Trim(), "--route");

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
        if (Transparent)
        {
            return $"{{ {name}listen = {HoconText.Quote(Listen)}, mode = transparent }}";
        }

        var members = Upstream.Split(',');
        var upstream = members.Length == 1
            ? $"upstream = {HoconText.Quote(Upstream)}"
            : $"upstreams = [ {string.Join(", ", members.Select(HoconText.Quote))} ]";
        return $"{{ {name}listen = {HoconText.Quote(Listen)}, {upstream} }}";
    }

    private static (string? Name, string Listen) SplitName(string spec, string left, string flag)
    {
        var at = left.IndexOf('@');
        if (at < 0)
        {
            return (null, left);
        }

        var name = left[..at].Trim();
        if (!RelaySettings.IsValidRouteName(name))
        {
            throw new RelayConfigException(flag, spec, $"route name '{name}' must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit");
        }

        return (name, left[(at + 1)..].Trim());
    }

    private static RelayConfigException Bad(string spec, string problem) => new("--route", spec, problem);
}
