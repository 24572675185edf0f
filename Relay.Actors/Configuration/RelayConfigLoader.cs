using System.Text;
using Akka.Configuration;
using Akka.Configuration.Hocon;

namespace Relay.Actors.Configuration;

/// <summary>
/// Builds the layered configuration of a relay node: flags over later files over earlier
/// files over the embedded defaults (<c>hocon/relay.conf</c>). The result holds every key
/// the files had, <c>akka.*</c> included, so it can configure the ActorSystem too.
/// Writing the settings back out as HOCON is <see cref="EffectiveConfigWriter"/>'s.
/// </summary>
public static class RelayConfigLoader
{
    /// <summary>The logical name of the embedded <c>hocon/relay.conf</c>.</summary>
    public const string EmbeddedResourceName = "Relay.relay.conf";

    private static readonly Lazy<Config> Defaults = new(LoadEmbeddedDefaults);

    /// <summary>The parsed embedded <c>hocon/relay.conf</c>: every <c>relay.*</c> key with its default.</summary>
    public static Config EmbeddedDefaults => Defaults.Value;

    /// <summary>The embedded <c>hocon/relay.conf</c> as text, comments included.</summary>
    public static string EmbeddedDefaultsText
    {
        get
        {
            using var stream = typeof(RelayConfigLoader).Assembly.GetManifestResourceStream(EmbeddedResourceName)
                ?? throw new InvalidOperationException($"The build did not embed {EmbeddedResourceName}.");
            using var reader = new StreamReader(stream, Encoding.UTF8);
            return reader.ReadToEnd();
        }
    }

    /// <summary>
    /// Layers the configuration. Later <paramref name="configFiles"/> override earlier ones
    /// key by key (HOCON does not merge lists: a later <c>relay.routes</c> replaces an earlier
    /// one). <paramref name="routeSpecs"/> (<c>[NAME@]LISTEN=UPSTREAM</c>) are appended to the
    /// routes of the files; one with the name of a file route replaces that route.
    /// <paramref name="transparentSpecs"/> (<c>[NAME@]LISTEN</c>) add transparent routes the same way.
    /// <paramref name="managementEndpoint"/> and <paramref name="managementToken"/>, when not
    /// null, override <c>relay.management</c>. The result is not validated: pass it to
    /// <see cref="RelaySettings.Create"/>.
    /// </summary>
    /// <exception cref="RelayConfigException">A file is missing, unreadable or not HOCON, or a flag is malformed.</exception>
    public static Config Load(
        IEnumerable<string> configFiles,
        IEnumerable<string> routeSpecs,
        string? managementEndpoint,
        string? managementToken,
        IEnumerable<string>? transparentSpecs = null)
    {
        ArgumentNullException.ThrowIfNull(configFiles);
        ArgumentNullException.ThrowIfNull(routeSpecs);

        var layered = EmbeddedDefaults;
        foreach (var file in configFiles)
        {
            var parsed = ParseFile(file);
            if (!parsed.IsEmpty)
            {
                layered = parsed.WithFallback(layered);
            }
        }

        var flags = new StringBuilder();
        if (managementEndpoint is not null)
        {
            var endpoint = managementEndpoint.Trim();
            if (!RelaySettingsReader.IsOff(endpoint) && !AddressParser.TryParseListen(endpoint, out _, out var problem))
            {
                throw new RelayConfigException("--management", managementEndpoint, $"{problem}; use off to disable");
            }

            flags.Append("relay.management.endpoint = ").AppendLine(HoconText.Quote(endpoint));
        }

        if (managementToken is not null)
        {
            flags.Append("relay.management.token = ").AppendLine(HoconText.Quote(managementToken));
        }

        var specs = routeSpecs.Select(RouteSpec.Parse).Concat((transparentSpecs ?? []).Select(RouteSpec.ParseTransparent)).ToList();
        if (specs.Count > 0)
        {
            layered = WithRoutes(layered, specs);
        }

        return flags.Length == 0 ? layered : HoconText.Parse(flags.ToString(), "command-line flags").WithFallback(layered);
    }

    /// <summary>Reads and parses one HOCON file; errors name the file (and the line when known).</summary>
    /// <exception cref="RelayConfigException">The file is missing, unreadable or not valid HOCON.</exception>
    public static Config ParseFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new RelayConfigException(path, null, "config file not found");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new RelayConfigException(path, null, $"config file cannot be read: {HoconText.FirstLine(e.Message)}");
        }

        return HoconText.Parse(text, path);
    }

    /// <summary>
    /// The effective settings as HOCON, for <c>relay check-config</c>: see
    /// <see cref="EffectiveConfigWriter.Write"/>.
    /// </summary>
    public static string Render(RelaySettings settings) => EffectiveConfigWriter.Write(settings);

    private static Config WithRoutes(Config layered, List<RouteSpec> specs)
    {
        var fileValue = layered.GetValue("relay.routes");
        if (!ConfigReader.TryGetList(fileValue, out var fileRoutes) && fileValue is not null)
        {
            throw new RelayConfigException("relay.routes", ConfigReader.SafeString(fileValue), "must be a list of route objects");
        }

        var flagNames = specs.Where(s => s.Name is not null).Select(s => s.Name!).ToHashSet(StringComparer.Ordinal);

        var routes = new HoconArray();
        routes.AddRange(fileRoutes.Where(r => !flagNames.Contains(NameOf(r) ?? "")));
        var flagText = $"routes = [\n{string.Join("\n", specs.Select(s => s.ToHocon()))}\n]";
        ConfigReader.TryGetList(HoconText.Parse(flagText, "--route").GetValue("routes"), out var flagRoutes);
        routes.AddRange(flagRoutes);

        var top = new Config(new HoconRoot(Wrap("relay", Wrap("routes", ValueOf(routes)))));
        return top.WithFallback(layered);
    }

    private static string? NameOf(HoconValue route)
    {
        try
        {
            return route.IsObject() && route.GetObject().Items.TryGetValue("name", out var name) ? name.GetString()?.Trim() : null;
        }
        catch (Exception)
        {
            return null; // not a usable route: RelaySettings.Create reports it with its key path
        }
    }

    private static HoconValue ValueOf(IHoconElement element)
    {
        var value = new HoconValue();
        value.NewValue(element);
        return value;
    }

    private static HoconValue Wrap(string key, HoconValue inner)
    {
        var obj = new HoconObject();
        obj.Items[key] = inner;
        return ValueOf(obj);
    }

    private static Config LoadEmbeddedDefaults()
    {
        try
        {
            return HoconText.Parse(EmbeddedDefaultsText, "embedded relay.conf");
        }
        catch (RelayConfigException e)
        {
            throw new InvalidOperationException($"The embedded defaults are broken (a build defect): {e.Message}", e);
        }
    }
}
