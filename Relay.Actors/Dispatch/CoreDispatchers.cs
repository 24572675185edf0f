using Akka.Configuration;
using Relay.Actors.Configuration;

namespace Relay.Actors.Dispatch;

/// <summary>
/// PLACEHOLDER (owned by the dispatch work): the per-core dispatcher ids and their HOCON.
/// </summary>
public static class CoreDispatchers
{
    public const string ConfigRoot = "relay-core-dispatchers";

    public static string IdFor(int core) => $"{ConfigRoot}.core-{core}";

    public static Config CreateConfig(DispatcherSettings settings)
    {
        var lines = new System.Text.StringBuilder();
        for (var core = 0; core < settings.Cores; core++)
        {
            lines.AppendLine($"{ConfigRoot}.core-{core} {{ type = PinnedDispatcher, throughput = {settings.Throughput} }}");
        }

        return ConfigurationFactory.ParseString(lines.ToString());
    }
}
