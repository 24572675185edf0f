using Akka.Configuration;
using Akka.Configuration.Hocon;

namespace Relay.Actors.Configuration;

/// <summary>
/// INTERNAL API. Reads typed values from one HOCON object and turns every failure, Akka's
/// own parse errors included, into a <see cref="RelayConfigException"/> that names the full
/// key path (<see cref="KeyPrefix"/> plus the relative key) and the value as written.
/// </summary>
internal readonly struct ConfigReader
{
    // Timers take milliseconds as Int32 in several places (Akka's scheduler among them),
    // so longer durations would overflow somewhere downstream.
    internal static readonly TimeSpan MaxDuration = TimeSpan.FromDays(24);

    private readonly Config _config;

    public ConfigReader(Config config, string keyPrefix)
    {
        _config = config;
        KeyPrefix = keyPrefix;
    }

    /// <summary>The path shown to the operator, like <c>relay.routes[1]</c>.</summary>
    public string KeyPrefix { get; }

    public string KeyPath(string key) => $"{KeyPrefix}.{key}";

    public bool Has(string key) => _config.HasPath(key);

    /// <summary>The value as written, or null when the key is missing or not a single value.</summary>
    public string? Raw(string key)
    {
        try
        {
            return _config.HasPath(key) ? _config.GetString(key) : null;
        }
        catch (Exception e) when (e is not RelayConfigException)
        {
            return null;
        }
    }

    /// <summary>The value as written; a missing key or an object/list is an error.</summary>
    public string Scalar(string key)
    {
        if (!_config.HasPath(key))
        {
            throw new RelayConfigException(KeyPath(key), null, "is missing");
        }

        return Raw(key) ?? throw new RelayConfigException(KeyPath(key), null, "must be a single value, not an object, a list or null");
    }

    /// <summary>A duration greater than 0 and at most <paramref name="max"/>.</summary>
    public TimeSpan Duration(string key, TimeSpan max)
    {
        var raw = Scalar(key);
        TimeSpan value;
        try
        {
            value = _config.GetTimeSpan(key, null, allowInfinite: false);
        }
        catch (Exception e) when (e is FormatException or OverflowException or NotSupportedException or ArgumentException)
        {
            throw new RelayConfigException(KeyPath(key), raw, "must be a duration like 500ms, 5s, 1m or 1h");
        }

        if (value <= TimeSpan.Zero || value > max)
        {
            throw new RelayConfigException(KeyPath(key), raw, $"must be greater than 0 and at most {FormatDuration(max)}");
        }

        return value;
    }

    /// <summary>A duration greater than 0 and at most <paramref name="max"/>, or null for <c>off</c>.</summary>
    public TimeSpan? DurationOrOff(string key, TimeSpan max)
    {
        if (IsOffWord(Scalar(key).Trim()))
        {
            return null;
        }

        try
        {
            return Duration(key, max);
        }
        catch (RelayConfigException e)
        {
            throw new RelayConfigException(e.Key, e.Value, $"must be off or a duration greater than 0 and at most {FormatDuration(max)}, like 30s or 5m");
        }
    }

    public long Bytes(string key, long min, long max) => BytesCore(key, min, max, "");

    /// <summary>A byte size, or null for <c>auto</c>.</summary>
    public int? BytesOrAuto(string key, long min, long max) =>
        IsAuto(key) ? null : checked((int)BytesCore(key, min, max, "auto or "));

    private long BytesCore(string key, long min, long max, string orAuto)
    {
        var raw = Scalar(key);
        long? value;
        try
        {
            value = _config.GetByteSize(key);
        }
        catch (Exception e) when (e is FormatException or OverflowException or NotSupportedException or ArgumentException)
        {
            value = null;
        }

        if (value is null)
        {
            throw new RelayConfigException(KeyPath(key), raw, $"must be {orAuto}a size like 64k, 1m or 65536 (bytes)");
        }

        if (value < min || value > max)
        {
            throw new RelayConfigException(KeyPath(key), raw, $"must be {orAuto}a size from {ByteUnits.Words.Exact(min)} to {ByteUnits.Words.Exact(max)}");
        }

        return value.Value;
    }

    public bool Switch(string key)
    {
        var raw = Scalar(key);
        try
        {
            return _config.GetBoolean(key);
        }
        catch (Exception e) when (e is FormatException or NotSupportedException or ArgumentException)
        {
            throw new RelayConfigException(KeyPath(key), raw, "must be on or off (true or false)");
        }
    }

    public int Int(string key, int min, int max)
    {
        var raw = Scalar(key);
        if (!int.TryParse(raw.Trim(), System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var value)
            || value < min || value > max)
        {
            throw new RelayConfigException(KeyPath(key), raw, $"must be a whole number from {min} to {max}");
        }

        return value;
    }

    /// <summary>A whole number, or null for <c>auto</c>.</summary>
    public int? IntOrAuto(string key, int min, int max)
    {
        if (IsAuto(key))
        {
            return null;
        }

        var raw = Scalar(key);
        if (!int.TryParse(raw.Trim(), System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var value)
            || value < min || value > max)
        {
            throw new RelayConfigException(KeyPath(key), raw, $"must be auto or a whole number from {min} to {max}");
        }

        return value;
    }

    public string String(string key) => Scalar(key);

    /// <summary>A list of strings, like <c>["10.0.0.0/8", "::1"]</c>; a single string counts as a list of one.</summary>
    public IReadOnlyList<string> StringList(string key, string example)
    {
        var value = _config.GetValue(key);
        if (value is null)
        {
            throw new RelayConfigException(KeyPath(key), null, "is missing");
        }

        if (value.IsString())
        {
            return [value.GetString()];
        }

        // Inside a list of objects, Akka's parser can leave a whitespace literal beside the
        // array (routes = [ { allow = ["a"] } ]): the array is still the value.
        var arrays = value.Values.OfType<HoconArray>().ToList();
        if (arrays.Count > 0 && value.Values.Where(v => v is not HoconArray).All(v => string.IsNullOrWhiteSpace(v.GetString())))
        {
            var items = arrays.SelectMany(a => a).ToList();
            var result = new List<string>(items.Count);
            foreach (var item in items)
            {
                if (!item.IsString())
                {
                    throw new RelayConfigException(KeyPath(key), SafeString(item), $"must be a list of strings, like {example}");
                }

                result.Add(item.GetString());
            }

            return result;
        }

        if (value.Values.Count == 0)
        {
            return [];
        }

        throw new RelayConfigException(KeyPath(key), SafeString(value), $"must be a list of strings, like {example}");
    }

    // HOCON reads an unquoted off as the boolean false, which Akka renders as "false" or "off".
    internal static bool IsOffWord(string raw) =>
        raw.Equals("off", StringComparison.OrdinalIgnoreCase) || raw.Equals("false", StringComparison.OrdinalIgnoreCase)
        || raw.Equals("no", StringComparison.OrdinalIgnoreCase);

    public bool IsAuto(string key) => string.Equals(Raw(key)?.Trim(), "auto", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Rejects keys the schema does not know, so a typo such as <c>recieve-buffer</c> is an
    /// error instead of a silently ignored line. Nested objects are checked recursively.
    /// </summary>
    public static void CheckKnownKeys(HoconValue value, string keyPath, KeySchema schema)
    {
        if (!value.IsObject())
        {
            throw new RelayConfigException(keyPath, SafeString(value), $"must be an object {{ {string.Join(", ", schema.Keys.Keys)} }}");
        }

        foreach (var (key, child) in value.GetObject().Items)
        {
            if (!schema.Keys.TryGetValue(key, out var childSchema))
            {
                throw new RelayConfigException($"{keyPath}.{key}", null, $"unknown key (known keys here: {string.Join(", ", schema.Keys.Keys)})");
            }

            if (childSchema is not null)
            {
                CheckKnownKeys(child, $"{keyPath}.{key}", childSchema);
            }
        }
    }

    /// <summary>
    /// The elements of a HOCON list. Akka's <c>IsArray()</c> is false for a literal <c>[]</c>
    /// (but true for <c>[ ]</c>), so the list is recognised by its elements' type instead.
    /// </summary>
    internal static bool TryGetList(HoconValue? value, out IReadOnlyList<HoconValue> items)
    {
        // The parser keeps the blank between a list and a closing brace on the same line
        // (`{ upstreams = [ "a:1" ] }`) as a whitespace literal next to the array.
        var parts = value?.Values.Where(v => v is not HoconLiteral literal || !string.IsNullOrWhiteSpace(literal.Value)).ToList();
        if (parts is null || parts.Count == 0 || !parts.All(v => v is HoconArray))
        {
            items = [];
            return false;
        }

        items = parts.Cast<HoconArray>().SelectMany(a => a).ToList();
        return true;
    }

    internal static string? SafeString(HoconValue value)
    {
        try
        {
            return value.IsObject() || value.IsArray() ? null : value.GetString();
        }
        catch (Exception)
        {
            return null;
        }
    }

    /// <summary>A duration in the largest unit that states it exactly, in HOCON syntax: 5s, 1m, 1h, 250ms.</summary>
    public static string FormatDuration(TimeSpan value)
    {
        var ms = (long)value.TotalMilliseconds;
        if (value.Ticks % TimeSpan.TicksPerMillisecond != 0)
        {
            return $"{value.TotalMilliseconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}ms";
        }

        return ms switch
        {
            0 => "0ms",
            _ when ms % 86_400_000 == 0 => $"{ms / 86_400_000}d",
            _ when ms % 3_600_000 == 0 => $"{ms / 3_600_000}h",
            _ when ms % 60_000 == 0 => $"{ms / 60_000}m",
            _ when ms % 1000 == 0 => $"{ms / 1000}s",
            _ => $"{ms}ms",
        };
    }
}

/// <summary>INTERNAL API. The keys one HOCON object may hold; a null child is a leaf value.</summary>
internal sealed record KeySchema(IReadOnlyDictionary<string, KeySchema?> Keys)
{
    public static KeySchema Of(params (string Key, KeySchema? Child)[] keys) =>
        new(keys.ToDictionary(k => k.Key, k => k.Child, StringComparer.Ordinal));

    public static KeySchema Leaves(params string[] keys) =>
        new(keys.ToDictionary(k => k, _ => (KeySchema?)null, StringComparer.Ordinal));

    public KeySchema With(params (string Key, KeySchema? Child)[] more)
    {
        var all = new Dictionary<string, KeySchema?>(Keys, StringComparer.Ordinal);
        foreach (var (key, child) in more)
        {
            all[key] = child;
        }

        return new KeySchema(all);
    }
}
