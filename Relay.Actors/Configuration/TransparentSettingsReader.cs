using System.Net;
using Akka.Configuration.Hocon;
using Relay.Actors.Transparent;

namespace Relay.Actors.Configuration;

/// <summary>
/// INTERNAL API. Reads the route keys of transparent gateway mode into
/// <see cref="TransparentSettings"/>, apart from the forward-route keys.
/// </summary>
internal static class TransparentSettingsReader
{
    /// <summary>Route keys that only a <c>mode = transparent</c> route may have.</summary>
    private static readonly string[] TransparentOnlyKeys = ["interception", "upstream-source", "destinations"];

    /// <summary>The schema of those keys.</summary>
    internal static readonly (string Key, KeySchema? Child)[] Keys =
    [
        ("interception", null), ("upstream-source", null), ("destinations", KeySchema.Leaves("allow", "deny", "ports")),
    ];

    /// <summary>
    /// Null for a forward route (<c>mode</c> missing or <c>forward</c>), else the transparent
    /// settings. A forward route with a transparent-only key, or a transparent route with an
    /// <c>upstream</c>, is an error: either would be silently ignored otherwise.
    /// </summary>
    public static TransparentSettings? Read(ConfigReader reader, HoconObject local)
    {
        var mode = reader.Has("mode") ? reader.String("mode").Trim() : "forward";
        if (mode.Equals("forward", StringComparison.OrdinalIgnoreCase))
        {
            foreach (var key in TransparentOnlyKeys)
            {
                if (local.Items.ContainsKey(key))
                {
                    throw new RelayConfigException(reader.KeyPath(key), reader.Raw(key), "is only for transparent routes (mode = transparent)");
                }
            }

            return null;
        }

        if (!mode.Equals("transparent", StringComparison.OrdinalIgnoreCase))
        {
            throw new RelayConfigException(reader.KeyPath("mode"), mode, "must be forward or transparent");
        }

        foreach (var key in new[] { "upstream", "upstreams" })
        {
            if (local.Items.ContainsKey(key))
            {
                throw new RelayConfigException(reader.KeyPath(key), reader.Raw(key),
                    $"a transparent route connects to each connection's original destination; remove {key} (or use mode = forward)");
            }
        }

        var interception = Choice(reader, "interception", Interception.Redirect,
            ("redirect", Interception.Redirect), ("tproxy", Interception.Tproxy));
        var source = Choice(reader, "upstream-source", UpstreamSource.Relay,
            ("relay", UpstreamSource.Relay), ("client", UpstreamSource.Client));
        var destinations = local.Items.TryGetValue("destinations", out var value)
            ? ReadDestinations(reader.KeyPath("destinations"), value)
            : DestinationPolicy.AllowAll;
        return new TransparentSettings(interception, source, destinations);
    }

    private static T Choice<T>(ConfigReader reader, string key, T fallback, params (string Name, T Value)[] choices)
    {
        if (!reader.Has(key))
        {
            return fallback;
        }

        var text = reader.String(key).Trim();
        foreach (var (name, value) in choices)
        {
            if (name.Equals(text, StringComparison.OrdinalIgnoreCase))
            {
                return value;
            }
        }

        throw new RelayConfigException(reader.KeyPath(key), text, $"must be {string.Join(" or ", choices.Select(c => c.Name))}");
    }

    private static DestinationPolicy ReadDestinations(string path, HoconValue value)
    {
        var items = value.GetObject().Items;
        var allow = Networks(path + ".allow", items.GetValueOrDefault("allow"));
        var deny = Networks(path + ".deny", items.GetValueOrDefault("deny"));
        var ports = new List<PortRange>();
        foreach (var (text, key) in Strings(path + ".ports", items.GetValueOrDefault("ports"), "[80, 443, \"8000-8100\"]"))
        {
            if (!PortRange.TryParse(text, out var range))
            {
                throw new RelayConfigException(key, text, "must be a port (1..65535) or a range like \"8000-8100\"");
            }

            ports.Add(range);
        }

        return new DestinationPolicy(allow, deny, ports);
    }

    private static List<IPNetwork> Networks(string path, HoconValue? value)
    {
        var networks = new List<IPNetwork>();
        foreach (var (text, key) in Strings(path, value, "[\"198.18.2.0/24\", \"2001:db8::/32\"]"))
        {
            if (!DestinationPolicy.TryParseNetwork(text, out var network, out var problem))
            {
                throw new RelayConfigException(key, text, problem);
            }

            networks.Add(network);
        }

        return networks;
    }

    private static bool TryGetArray(HoconValue value, out IReadOnlyList<HoconValue> elements)
    {
        try
        {
            // `[]` is a HoconArray with no elements (IsArray false), `[ ]` an array plus a
            // whitespace literal: anything made only of arrays and blanks is a list.
            var isList = value.Values.Any(v => v is HoconArray)
                         && value.Values.All(v => v is HoconArray || (v is HoconLiteral l && string.IsNullOrWhiteSpace(l.Value)));
            elements = isList ? value.Values.OfType<HoconArray>().SelectMany(a => a).ToList() : [];
            return isList;
        }
        catch (Exception e) when (e is not RelayConfigException)
        {
            elements = [];
            return false;
        }
    }

    /// <summary>The elements of a list of scalars, each with its key path (<c>...ports[1]</c>). Missing or <c>[]</c> is empty.</summary>
    private static IEnumerable<(string Text, string Key)> Strings(string path, HoconValue? value, string example)
    {
        if (value is null || value.Values.Count == 0)
        {
            yield break;
        }

        // A list nested in an object of a list element parses differently from a top-level
        // one in Akka's HOCON: accept both shapes.
        if (!ConfigReader.TryGetList(value, out var elements) && !TryGetArray(value, out elements))
        {
            throw new RelayConfigException(path, ConfigReader.SafeString(value), $"must be a list, like {example}");
        }

        for (var i = 0; i < elements.Count; i++)
        {
            if (elements[i].Values.Count == 0)
            {
                continue; // the phantom element Akka's parser puts in `[ ]`
            }

            var key = $"{path}[{i}]";
            var text = ConfigReader.SafeString(elements[i]);
            if (text is null)
            {
                throw new RelayConfigException(key, null, $"must be a single value, like {example}");
            }

            yield return (text.Trim(), key);
        }
    }
}
