using System.Globalization;
using System.Net;
using Relay.Actors.Circuits.ProxyProtocol;

namespace Relay.Actors.Configuration;

/// <summary><c>relay check-config</c>'s rendering of the admission keys, in the syntax they are read in.</summary>
public static partial class RelayConfigLoader
{
    private static void WriteAdmission(HoconWriter w, AdmissionDefaults a)
    {
        w.Key("allow", Networks(a.Access.Allow));
        w.Key("deny", Networks(a.Access.Deny));
        w.Key("max-circuits", Limit(a.Limits.MaxCircuits));
        w.Key("max-circuits-per-source", Limit(a.Limits.MaxCircuitsPerSource));
        w.Key("accept-rate", Limit(a.Limits.AcceptRate));
        w.Key("proxy-protocol", a.ProxyProtocol.Send switch
        {
            ProxyProtocolVersion.V1 => "v1",
            ProxyProtocolVersion.V2 => "v2",
            _ => "off",
        });
        w.Key("accept-proxy-protocol", Switch(a.ProxyProtocol.Accept));
        w.Key("proxy-header-timeout", ConfigReader.FormatDuration(a.ProxyProtocol.HeaderTimeout));
    }

    private static void WriteLimits(HoconWriter w, LimitSettings limits)
    {
        w.Open("limits");
        w.Key("max-circuits", Limit(limits.MaxCircuits));
        w.Key("max-circuits-per-source", Limit(limits.MaxCircuitsPerSource));
        w.Key("accept-rate", Limit(limits.AcceptRate));
        w.Close();
    }

    private static string Networks(IReadOnlyList<IPNetwork> networks) =>
        networks.Count == 0 ? "[]" : "[" + string.Join(", ", networks.Select(n => HoconText.Quote(n.ToString()))) + "]";

    private static string Limit(int? value) => value?.ToString(CultureInfo.InvariantCulture) ?? "off";
}
