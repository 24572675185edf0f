using System.Net;
using Akka.Configuration;
using Akka.Configuration.Hocon;

namespace Relay.Actors.Configuration;

/// <summary>
/// INTERNAL API. Reads <c>relay.*</c> into <see cref="RelaySettings"/> and validates every
/// value (the entry point is <see cref="RelaySettings.Create"/>): the routes, their circuit
/// knobs and the node-wide sections here, and through the section readers
/// <see cref="UpstreamPoolSettingsReader"/>, <see cref="AdmissionSettingsReader"/>,
/// <see cref="TransparentSettingsReader"/> and <see cref="ClusterSettingsReader"/>.
/// </summary>
internal static class RelaySettingsReader
{
    // Bounds that keep values inside what the kernel and the data path can use. Each is
    // explained where relay.conf documents its key.
    internal const long MinWriteSize = 1024;
    internal const long MaxWriteSize = 16L * 1024 * 1024;
    internal const long MaxWindow = 1024L * 1024 * 1024;
    internal const long MinSocketBuffer = 1024;
    internal const long MaxSocketBuffer = 1024L * 1024 * 1024; // the kernel doubles SO_RCVBUF into an int
    internal const int MinMaxSegment = 88;                    // TCP_MIN_MSS in the Linux kernel
    internal const int MaxMaxSegment = 65495;                 // 65535 minus IPv4 and TCP headers
    internal const int MaxKeepAliveSeconds = 32767;           // MAX_TCP_KEEPIDLE / MAX_TCP_KEEPINTVL
    internal const int MaxKeepAliveCount = 127;               // MAX_TCP_KEEPCNT
    internal const int MaxCores = 1024;

    private static readonly KeySchema KeepAliveSchema = KeySchema.Leaves("enabled", "idle", "interval", "count");

    private static readonly KeySchema SideSchema =
        KeySchema.Leaves("receive-buffer", "send-buffer", "no-delay", "max-segment", "congestion")
            .With(("keepalive", KeepAliveSchema));

    internal static readonly KeySchema CircuitSchema =
        KeySchema.Leaves("connect-timeout", "idle-timeout", "half-closed-timeout", "null-circuits", "write-size", "window", "splice", "backlog")
            .With(("client-side", SideSchema), ("upstream-side", SideSchema))
            .With(UpstreamPoolSettingsReader.Keys)
            .With(AdmissionSettingsReader.Keys);

    internal static readonly KeySchema RouteSchema = CircuitSchema.With(
        ("name", null), ("listen", null), ("upstream", null), ("upstreams", null), ("mode", null)).With(TransparentSettingsReader.Keys);

    private static readonly KeySchema RelaySchema = KeySchema.Of(
        ("routes", null), // a list: each element is checked against RouteSchema
        ("shutdown-grace", null),
        ("defaults", CircuitSchema),
        ("dispatchers", KeySchema.Leaves("cores", "pin", "throughput")),
        ("management", KeySchema.Leaves("endpoint", "token")),
        ("cluster", ClusterSettingsReader.Schema),
        ("limits", KeySchema.Leaves(AdmissionSettingsReader.LimitKeys)));

    private static readonly Lazy<IReadOnlyList<string>?> AvailableCongestion = new(ReadAvailableCongestion);

    /// <inheritdoc cref="RelaySettings.Create"/>
    public static RelaySettings Read(Config config)
    {
        ArgumentNullException.ThrowIfNull(config);
        try
        {
            var full = ReferenceEquals(config, RelayConfigLoader.EmbeddedDefaults)
                ? config
                : config.WithFallback(RelayConfigLoader.EmbeddedDefaults);
            return CreateCore(full);
        }
        catch (RelayConfigException)
        {
            throw;
        }
        catch (Exception e)
        {
            // Akka's HOCON accessors throw a zoo of exception types; none may reach a user as a stack trace.
            throw new RelayConfigException("relay", null, $"cannot be read: {HoconText.FirstLine(e.Message)}");
        }
    }

    private static RelaySettings CreateCore(Config config)
    {
        ConfigReader.CheckKnownKeys(config.GetValue("relay"), "relay", RelaySchema);

        var defaultsConfig = config.GetConfig("relay.defaults");
        var defaultsReader = new ConfigReader(defaultsConfig, "relay.defaults");
        var defaults = ReadCircuit(defaultsReader, routeObject: null);
        defaultsReader.Int("backlog", 1, 65535);
        UpstreamPoolSettingsReader.ReadRules(defaultsReader);
        var defaultAdmission = AdmissionSettingsReader.Read(defaultsReader);

        var routes = ReadRoutes(config, defaultsConfig);
        var dispatchers = ReadDispatchers(new ConfigReader(config.GetConfig("relay.dispatchers"), "relay.dispatchers"));
        var management = ReadManagement(new ConfigReader(config.GetConfig("relay.management"), "relay.management"));
        var cluster = ClusterSettingsReader.Read(new ConfigReader(config.GetConfig("relay.cluster"), "relay.cluster"));
        return new RelaySettings(routes, defaults, dispatchers, management)
        {
            ShutdownGrace = ReadShutdownGrace(config),
            Cluster = cluster,
            Limits = AdmissionSettingsReader.ReadLimits(new ConfigReader(config.GetConfig("relay.limits"), "relay.limits")),
            DefaultAdmission = defaultAdmission,
        };
    }

    private static List<RouteSettings> ReadRoutes(Config config, Config defaultsConfig)
    {
        var value = config.GetValue("relay.routes");
        if (!ConfigReader.TryGetList(value, out var elements))
        {
            throw new RelayConfigException("relay.routes", value is null ? null : ConfigReader.SafeString(value),
                "must be a list of route objects, like [ { listen = \"0.0.0.0:7000\", upstream = \"198.18.1.2:7000\" } ]");
        }

        var routes = new List<RouteSettings>();
        var names = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < elements.Count; i++)
        {
            var path = $"relay.routes[{i}]";
            var element = elements[i];
            if (!element.IsObject())
            {
                throw new RelayConfigException(path, ConfigReader.SafeString(element),
                    "must be a route object, like { listen = \"0.0.0.0:7000\", upstream = \"198.18.1.2:7000\" }");
            }

            ConfigReader.CheckKnownKeys(element, path, RouteSchema);
            var local = element.GetObject();
            var reader = new ConfigReader(element.ToConfig().WithFallback(defaultsConfig), path);

            var transparent = TransparentSettingsReader.Read(reader, local);
            var name = reader.Has("name") ? reader.String("name").Trim() : $"route-{i + 1}";
            if (!RelaySettings.IsValidRouteName(name))
            {
                throw new RelayConfigException(reader.KeyPath("name"), name,
                    "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit");
            }

            if (names.TryGetValue(name, out var other))
            {
                var how = local.Items.ContainsKey("name") ? "" : " (the automatic name of an unnamed route)";
                throw new RelayConfigException(reader.KeyPath("name"), name, $"is already the name of relay.routes[{other}]{how}");
            }

            names.Add(name, i);

            var listenText = Required(reader, "listen", "0.0.0.0:7000");
            if (!AddressParser.TryParseListen(listenText, out var listen, out var problem))
            {
                throw new RelayConfigException(reader.KeyPath("listen"), listenText, problem);
            }

            CheckListenIsFree(reader, listenText, listen, routes);

            // A transparent route has no pool: each circuit connects to its original destination.
            var upstream = transparent is null
                ? UpstreamPoolSettingsReader.Read(reader, local)
                : Upstreams.UpstreamPoolSettings.Single(TransparentSettings.OriginalDestination);
            var backlog = reader.Int("backlog", 1, 65535);
            routes.Add(AdmissionSettingsReader.WithAdmission(new RouteSettings(name, listen, upstream, backlog, ReadCircuit(reader, local)) { Transparent = transparent }, reader));
        }

        return routes;
    }

    /// <summary>A key every route needs; <paramref name="example"/> is a value to show when it is missing.</summary>
    internal static string Required(ConfigReader reader, string key, string example)
    {
        if (!reader.Has(key))
        {
            throw new RelayConfigException(reader.KeyPath(key), null, $"is missing: every route needs {key} = \"{example}\"");
        }

        return reader.String(key).Trim();
    }

    // Two sockets cannot bind the same port where one address is the other's wildcard, so
    // 0.0.0.0:7000 and 127.0.0.1:7000 clash as surely as two 0.0.0.0:7000. Port 0 never clashes.
    private static void CheckListenIsFree(ConfigReader reader, string text, IPEndPoint listen, List<RouteSettings> earlier)
    {
        if (listen.Port == 0)
        {
            return;
        }

        for (var j = 0; j < earlier.Count; j++)
        {
            var other = earlier[j].Listen;
            if (other.Port != listen.Port || other.AddressFamily != listen.AddressFamily)
            {
                continue;
            }

            var any = listen.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any;
            if (other.Address.Equals(listen.Address) || other.Address.Equals(any) || listen.Address.Equals(any))
            {
                throw new RelayConfigException(reader.KeyPath("listen"), text,
                    $"clashes with relay.routes[{j}] (\"{earlier[j].Name}\") listening on {AddressParser.Format(other)}");
            }
        }
    }

    private static CircuitSettings ReadCircuit(ConfigReader r, HoconObject? routeObject)
    {
        var connect = r.Duration("connect-timeout", ConfigReader.MaxDuration);
        var idle = r.Duration("idle-timeout", ConfigReader.MaxDuration);
        var halfClosed = r.DurationOrOff("half-closed-timeout", ConfigReader.MaxDuration);
        var writeSize = (int)r.Bytes("write-size", MinWriteSize, MaxWriteSize);
        var window = r.Bytes("window", 1, MaxWindow);
        if (window < writeSize)
        {
            // A route that overrides only write-size inherits the window: say so, or the
            // operator looks for a window line that is not in the route.
            var inherited = routeObject is not null && !routeObject.Items.ContainsKey("window")
                ? " (window is inherited from relay.defaults)"
                : "";
            throw new RelayConfigException(r.KeyPath("window"), r.Raw("window"),
                $"must be at least write-size ({ByteUnits.Words.Exact(writeSize)}){inherited}");
        }

        return new CircuitSettings(
            connect,
            idle,
            halfClosed,
            writeSize,
            (int)window,
            ReadSide(r, "client-side"),
            ReadSide(r, "upstream-side"))
        {
            NullCircuits = ReadNullCircuits(r),
            Splice = r.Switch("splice"),
        };
    }

    private static NullCircuits ReadNullCircuits(ConfigReader r)
    {
        var raw = r.Scalar("null-circuits").Trim();
        return raw.Equals("quiet", StringComparison.OrdinalIgnoreCase) ? NullCircuits.Quiet
            : raw.Equals("log", StringComparison.OrdinalIgnoreCase) ? NullCircuits.Log
            : throw new RelayConfigException(r.KeyPath("null-circuits"), raw, "must be quiet or log");
    }

    private static SocketSideSettings ReadSide(ConfigReader r, string side)
    {
        return new SocketSideSettings(
            r.BytesOrAuto($"{side}.receive-buffer", MinSocketBuffer, MaxSocketBuffer),
            r.BytesOrAuto($"{side}.send-buffer", MinSocketBuffer, MaxSocketBuffer),
            r.Switch($"{side}.no-delay"),
            r.IntOrAuto($"{side}.max-segment", MinMaxSegment, MaxMaxSegment),
            ReadCongestion(r, $"{side}.congestion"),
            new KeepAliveSettings(
                r.Switch($"{side}.keepalive.enabled"),
                KeepAliveSeconds(r, $"{side}.keepalive.idle"),
                KeepAliveSeconds(r, $"{side}.keepalive.interval"),
                r.Int($"{side}.keepalive.count", 1, MaxKeepAliveCount)));
    }

    // TCP_KEEPIDLE and TCP_KEEPINTVL take whole seconds; rounding 1.5s silently would
    // make the effective config differ from the written one.
    private static TimeSpan KeepAliveSeconds(ConfigReader r, string key)
    {
        var max = TimeSpan.FromSeconds(MaxKeepAliveSeconds);
        TimeSpan value;
        try
        {
            value = r.Duration(key, max);
        }
        catch (RelayConfigException e)
        {
            throw new RelayConfigException(e.Key, e.Value, $"must be whole seconds from 1s to {MaxKeepAliveSeconds}s");
        }

        if (value < TimeSpan.FromSeconds(1) || value.Ticks % TimeSpan.TicksPerSecond != 0)
        {
            throw new RelayConfigException(r.KeyPath(key), r.Raw(key), $"must be whole seconds from 1s to {MaxKeepAliveSeconds}s");
        }

        return value;
    }

    private static string? ReadCongestion(ConfigReader r, string key)
    {
        if (r.IsAuto(key))
        {
            return null;
        }

        var name = r.String(key).Trim();
        var available = AvailableCongestion.Value;
        if (available is null)
        {
            throw new RelayConfigException(r.KeyPath(key), name,
                "cannot be checked: /proc/sys/net/ipv4/tcp_available_congestion_control is not readable (TCP_CONGESTION needs Linux); use auto");
        }

        if (!available.Contains(name, StringComparer.Ordinal))
        {
            throw new RelayConfigException(r.KeyPath(key), name,
                $"is not available in this kernel (available: {string.Join(", ", available)}); load its module (modprobe tcp_{name}) or use auto");
        }

        return name;
    }

    private static IReadOnlyList<string>? ReadAvailableCongestion()
    {
        try
        {
            return File.ReadAllText("/proc/sys/net/ipv4/tcp_available_congestion_control")
                .Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static DispatcherSettings ReadDispatchers(ConfigReader r)
    {
        // On Linux, ProcessorCount honours the affinity mask (and cgroup CPU limits), which
        // is what `cores = auto` promises: `taskset -c 2,3 relay run` gets 2 dispatchers.
        var cores = r.IntOrAuto("cores", 1, MaxCores) ?? Math.Clamp(Environment.ProcessorCount, 1, MaxCores);
        return new DispatcherSettings(cores, r.Switch("pin"), r.Int("throughput", 1, 10_000));
    }

    private static ManagementSettings ReadManagement(ConfigReader r)
    {
        var text = r.String("endpoint").Trim();
        IPEndPoint? endpoint = null;
        if (!IsOff(text))
        {
            if (!AddressParser.TryParseListen(text, out var parsed, out var problem))
            {
                throw new RelayConfigException(r.KeyPath("endpoint"), text, $"{problem}; use \"\" or off to disable");
            }

            endpoint = parsed;
        }

        return new ManagementSettings(endpoint, r.String("token"));
    }

    internal static bool IsOff(string endpoint) =>
        endpoint.Length == 0 || endpoint.Equals("off", StringComparison.OrdinalIgnoreCase);

    private static TimeSpan ReadShutdownGrace(Config config)
    {
        var reader = new ConfigReader(config.GetConfig("relay"), "relay");
        // 0s is allowed here (reset at once), unlike the circuit timeouts.
        if (reader.Raw("shutdown-grace")?.Trim() is "0" or "0s" or "0ms")
        {
            return TimeSpan.Zero;
        }

        return reader.Duration("shutdown-grace", ConfigReader.MaxDuration);
    }
}
