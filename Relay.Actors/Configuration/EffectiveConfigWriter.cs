using System.Globalization;
using System.Net;
using System.Text;
using Relay.Actors.Circuits.ProxyProtocol;

namespace Relay.Actors.Configuration;

/// <summary>
/// Writes <see cref="RelaySettings"/> back out as HOCON for <c>relay check-config</c>: every
/// route with every value it will use (defaults filled in), in the syntax the keys are read
/// in, so the output reads back as the same settings.
/// </summary>
public static class EffectiveConfigWriter
{
    /// <summary>The effective settings as HOCON. The management token is never printed.</summary>
    public static string Write(RelaySettings settings)
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
        w.Key("write-size", ByteUnits.Hocon.Exact(c.WriteSize));
        w.Key("window", ByteUnits.Hocon.Exact(c.Window));
        w.Key("splice", Switch(c.Splice));
        WriteSide(w, "client-side", c.ClientSide);
        WriteSide(w, "upstream-side", c.UpstreamSide);
    }

    private static void WriteSide(HoconWriter w, string name, SocketSideSettings side)
    {
        w.Open(name);
        w.Key("receive-buffer", side.ReceiveBuffer is { } rcv ? ByteUnits.Hocon.Exact(rcv) : "auto");
        w.Key("send-buffer", side.SendBuffer is { } snd ? ByteUnits.Hocon.Exact(snd) : "auto");
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
