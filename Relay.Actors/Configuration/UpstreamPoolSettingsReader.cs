using Akka.Configuration.Hocon;
using Relay.Actors.Upstreams;

namespace Relay.Actors.Configuration;

/// <summary>
/// INTERNAL API. Reads a route's upstream pool into <see cref="UpstreamPoolSettings"/>:
/// <c>upstream</c> or <c>upstreams</c>, <c>balance</c>, and the health keys.
/// </summary>
internal static class UpstreamPoolSettingsReader
{
    internal const int MaxHealthCount = 100;

    /// <summary>The pool keys a route may set, and <c>relay.defaults</c> may default.</summary>
    internal static readonly (string Key, KeySchema? Child)[] Keys =
    [
        ("balance", null),
        ("passive-health", KeySchema.Leaves("fall", "backoff", "max-backoff")),
        ("health-check", KeySchema.Leaves("enabled", "interval", "timeout", "rise", "fall")),
    ];

    /// <summary>
    /// The route's members from exactly one of <c>upstream</c> (one) or <c>upstreams</c> (a
    /// list), with the balance and health settings of the route or of <c>relay.defaults</c>.
    /// </summary>
    public static UpstreamPoolSettings Read(ConfigReader reader, HoconObject local)
    {
        var hasOne = local.Items.ContainsKey("upstream");
        var hasList = local.Items.ContainsKey("upstreams");
        if (hasOne && hasList)
        {
            throw new RelayConfigException(reader.KeyPath("upstreams"), null,
                "a route has either upstream (one) or upstreams (a list), not both; move the upstream into the list");
        }

        List<UpstreamAddress> members;
        if (hasList)
        {
            members = ReadMemberList(reader, local.Items["upstreams"]);
        }
        else
        {
            var text = RelaySettingsReader.Required(reader, "upstream", "198.18.1.2:7000\" (or upstreams = [ \"198.18.1.2:7000\", \"198.18.1.3:7000\" ]");
            if (!AddressParser.TryParseUpstream(text, out var one, out var problem))
            {
                throw new RelayConfigException(reader.KeyPath("upstream"), text, problem);
            }

            members = [one];
        }

        return ReadRules(reader) with { Members = members };
    }

    private static List<UpstreamAddress> ReadMemberList(ConfigReader reader, HoconValue value)
    {
        var key = reader.KeyPath("upstreams");
        // `[ ]` parses as one blank element: blanks are not members.
        if (!ConfigReader.TryGetList(value, out var all) || all.Where(v => !IsBlank(v)).ToList() is not { Count: > 0 } items)
        {
            throw new RelayConfigException(key, ConfigReader.SafeString(value),
                "must be a non-empty list of \"host:port\", like [ \"198.18.1.2:7000\", \"198.18.1.3:7000\" ]");
        }

        if (items.Count > UpstreamPoolSettings.MaxMembers)
        {
            throw new RelayConfigException(key, null, $"has {items.Count} members; a route may have at most {UpstreamPoolSettings.MaxMembers}");
        }

        var members = new List<UpstreamAddress>(items.Count);
        for (var i = 0; i < items.Count; i++)
        {
            var text = ConfigReader.SafeString(items[i])?.Trim();
            if (text is null)
            {
                throw new RelayConfigException($"{key}[{i}]", null, "must be a \"host:port\" string");
            }

            if (!AddressParser.TryParseUpstream(text, out var member, out var problem))
            {
                throw new RelayConfigException($"{key}[{i}]", text, problem);
            }

            if (members.Contains(member))
            {
                throw new RelayConfigException($"{key}[{i}]", text, $"is already {key}[{members.IndexOf(member)}]");
            }

            members.Add(member);
        }

        return members;
    }

    private static bool IsBlank(HoconValue value) => !value.IsObject() && !value.IsArray() && string.IsNullOrWhiteSpace(ConfigReader.SafeString(value));

    /// <summary>Balance and health rules; validated for <c>relay.defaults</c> as for each route.</summary>
    public static UpstreamPoolSettings ReadRules(ConfigReader r)
    {
        var balanceText = r.String("balance").Trim();
        var balance = balanceText.ToLowerInvariant() switch
        {
            "round-robin" => BalanceMode.RoundRobin,
            "least-circuits" => BalanceMode.LeastCircuits,
            _ => throw new RelayConfigException(r.KeyPath("balance"), balanceText, "must be round-robin or least-circuits"),
        };

        var passive = new PassiveHealthSettings(
            r.Int("passive-health.fall", 1, MaxHealthCount),
            r.Duration("passive-health.backoff", ConfigReader.MaxDuration),
            r.Duration("passive-health.max-backoff", ConfigReader.MaxDuration));
        if (passive.MaxBackoff < passive.Backoff)
        {
            throw new RelayConfigException(r.KeyPath("passive-health.max-backoff"), r.Raw("passive-health.max-backoff"),
                $"must be at least passive-health.backoff ({ConfigReader.FormatDuration(passive.Backoff)})");
        }

        var check = new HealthCheckSettings(
            r.Switch("health-check.enabled"),
            r.Duration("health-check.interval", ConfigReader.MaxDuration),
            r.Duration("health-check.timeout", ConfigReader.MaxDuration),
            r.Int("health-check.rise", 1, MaxHealthCount),
            r.Int("health-check.fall", 1, MaxHealthCount));
        if (check.Timeout > check.Interval)
        {
            throw new RelayConfigException(r.KeyPath("health-check.timeout"), r.Raw("health-check.timeout"),
                $"must be at most health-check.interval ({ConfigReader.FormatDuration(check.Interval)}), or checks would overlap");
        }

        return new UpstreamPoolSettings([], balance, passive, check);
    }
}
