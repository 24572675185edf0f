using System.Globalization;
using System.Text;
using Akka.Configuration;
using Akka.Configuration.Hocon;

namespace Relay.Actors.Configuration;

/// <summary>
/// Builds the layered configuration of a relay node: flags over later files over earlier
/// files over the embedded defaults (<c>hocon/relay.conf</c>). The result holds every key
/// the files had, <c>akka.*</c> included, so it can configure the ActorSystem too.
/// </summary>
public static partial class RelayConfigLoader
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
    /// The effective settings as HOCON, every route with every value it will use (defaults
    /// filled in), for <c>relay check-config</c>. The management token is never printed.
    /// </summary>
    public static string Render(RelaySettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var w = new HoconWriter();
        w.Line("# Effective relay configuration: embedded defaults < --config files < flags.");
        w.Open("relay");
        if (settings.Routes.Count == 0)
        {
            w.Line("routes = []");
        }
        else
        {
            w.Line("routes = [");
            w.Indent++;
            foreach (var route in settings.Routes)
            {
                w.Line("{");
                w.Indent++;
                w.Key("name", HoconText.Quote(route.Name));
                w.Key("listen", HoconText.Quote(AddressParser.Format(route.Listen)));
                if (route.Transparent is { } transparent)
                {
                    WriteTransparent(w, transparent);
                }
                else
                {
                    WritePool(w, route.Upstreams);
                }

                w.Key("backlog", route.Backlog.ToString(CultureInfo.InvariantCulture));
                WriteCircuit(w, route.Circuit);
                WriteAdmission(w, new AdmissionDefaults(route.Access, route.Limits, route.ProxyProtocol));
                w.Indent--;
                w.Line("}");
            }

            w.Indent--;
            w.Line("]");
        }

        w.Key("shutdown-grace", ConfigReader.FormatDuration(settings.ShutdownGrace));
        w.Open("defaults");
        WriteCircuit(w, settings.Defaults);
        WriteAdmission(w, settings.DefaultAdmission);
        w.Close();

        WriteLimits(w, settings.Limits);

        w.Open("dispatchers");
        w.Key("cores", settings.Dispatchers.Cores.ToString(CultureInfo.InvariantCulture));
        w.Key("pin", Switch(settings.Dispatchers.Pin));
        w.Key("throughput", settings.Dispatchers.Throughput.ToString(CultureInfo.InvariantCulture));
        w.Close();

        w.Open("management");
        w.Key("endpoint", settings.Management.Endpoint is null ? "off" : HoconText.Quote(AddressParser.Format(settings.Management.Endpoint)));
        w.Key("token", settings.Management.Token.Length == 0 ? "\"\"" : "\"***\" # set; not shown");
        w.Close();
        w.Close();
        return w.ToString();
    }

    private static void WriteTransparent(HoconWriter w, TransparentSettings t)
    {
        static string List(IEnumerable<object> items) => "[" + string.Join(", ", items.Select(i => HoconText.Quote(i.ToString()!))) + "]";

        w.Key("mode", "transparent");
        w.Key("interception", TransparentSettings.Name(t.Interception));
        w.Key("upstream-source", TransparentSettings.Name(t.UpstreamSource));
        w.Open("destinations");
        w.Key("allow", List(t.Destinations.Allow.Cast<object>()));
        w.Key("deny", List(t.Destinations.Deny.Cast<object>()));
        w.Key("ports", List(t.Destinations.Ports.Cast<object>()));
        w.Close();
    }

    private static void WritePool(HoconWriter w, Upstreams.UpstreamPoolSettings pool)
    {
        if (pool.Members.Count == 1)
        {
            w.Key("upstream", HoconText.Quote(pool.Members[0].ToString()));
        }
        else
        {
            w.Key("upstreams", $"[ {string.Join(", ", pool.Members.Select(m => HoconText.Quote(m.ToString())))} ]");
        }

        w.Key("balance", pool.Balance == Upstreams.BalanceMode.LeastCircuits ? "least-circuits" : "round-robin");
        w.Open("passive-health");
        w.Key("fall", pool.Passive.Fall.ToString(CultureInfo.InvariantCulture));
        w.Key("backoff", ConfigReader.FormatDuration(pool.Passive.Backoff));
        w.Key("max-backoff", ConfigReader.FormatDuration(pool.Passive.MaxBackoff));
        w.Close();
        w.Open("health-check");
        w.Key("enabled", Switch(pool.HealthCheck.Enabled));
        w.Key("interval", ConfigReader.FormatDuration(pool.HealthCheck.Interval));
        w.Key("timeout", ConfigReader.FormatDuration(pool.HealthCheck.Timeout));
        w.Key("rise", pool.HealthCheck.Rise.ToString(CultureInfo.InvariantCulture));
        w.Key("fall", pool.HealthCheck.Fall.ToString(CultureInfo.InvariantCulture));
        w.Close();
    }

    private static void WriteCircuit(HoconWriter w, CircuitSettings c)
    {
        w.Key("connect-timeout", ConfigReader.FormatDuration(c.ConnectTimeout));
        w.Key("idle-timeout", ConfigReader.FormatDuration(c.IdleTimeout));
        w.Key("half-closed-timeout", c.HalfClosedTimeout is { } halfClosed ? ConfigReader.FormatDuration(halfClosed) : "off");
        w.Key("null-circuits", c.NullCircuits == NullCircuits.Log ? "log" : "quiet");
        w.Key("write-size", Size(c.WriteSize));
        w.Key("window", Size(c.Window));
        WriteSide(w, "client-side", c.ClientSide);
        WriteSide(w, "upstream-side", c.UpstreamSide);
    }

    private static void WriteSide(HoconWriter w, string name, SocketSideSettings side)
    {
        w.Open(name);
        w.Key("receive-buffer", side.ReceiveBuffer is { } rcv ? Size(rcv) : "auto");
        w.Key("send-buffer", side.SendBuffer is { } snd ? Size(snd) : "auto");
        w.Key("no-delay", Switch(side.NoDelay));
        w.Key("max-segment", side.MaxSegment?.ToString(CultureInfo.InvariantCulture) ?? "auto");
        w.Key("congestion", side.Congestion ?? "auto");
        w.Open("keepalive");
        w.Key("enabled", Switch(side.KeepAlive.Enabled));
        w.Key("idle", ConfigReader.FormatDuration(side.KeepAlive.Idle));
        w.Key("interval", ConfigReader.FormatDuration(side.KeepAlive.Interval));
        w.Key("count", side.KeepAlive.Count.ToString(CultureInfo.InvariantCulture));
        w.Close();
        w.Close();
    }

    private static string Switch(bool on) => on ? "on" : "off";

    // Sizes in the unit HOCON reads back exactly: 64k is 65536 bytes, 1m is 1 MiB.
    private static string Size(long bytes) => bytes switch
    {
        _ when bytes != 0 && bytes % (1L << 30) == 0 => $"{bytes >> 30}g",
        _ when bytes != 0 && bytes % (1L << 20) == 0 => $"{bytes >> 20}m",
        _ when bytes != 0 && bytes % (1L << 10) == 0 => $"{bytes >> 10}k",
        _ => bytes.ToString(CultureInfo.InvariantCulture),
    };

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

    private sealed class HoconWriter
    {
        private readonly StringBuilder _text = new();

        public int Indent { get; set; }

        public void Line(string line) => _text.Append(' ', Indent * 2).Append(line).Append('\n');

        public void Key(string key, string value) => Line($"{key} = {value}");

        public void Open(string key)
        {
            Line($"{key} {{");
            Indent++;
        }

        public void Close()
        {
            Indent--;
            Line("}");
        }

        public override string ToString() => _text.ToString();
    }
}
