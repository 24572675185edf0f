using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Relay.Tests.Management;

/// <summary>
/// A strict little reader of the Prometheus text format 0.0.4, enough to prove the relay's
/// exposition is well formed: every sample line is <c>name{labels} value</c>, and every
/// family has one HELP and one TYPE line before its samples.
/// </summary>
internal static partial class PrometheusText
{
    public sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

    public static IReadOnlyList<Sample> Parse(string text)
    {
        Assert.EndsWith("\n", text);
        var help = new HashSet<string>();
        var types = new Dictionary<string, string>();
        var samples = new List<Sample>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                Assert.True(help.Add(line.Split(' ')[2]), $"second HELP: {line}");
                continue;
            }

            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ');
                Assert.Equal(4, parts.Length);
                Assert.Contains(parts[3], new[] { "counter", "gauge", "histogram", "summary", "untyped" });
                types.Add(parts[2], parts[3]);
                continue;
            }

            Assert.False(line.StartsWith('#'), $"unexpected comment: {line}");
            var match = SampleLine().Match(line);
            Assert.True(match.Success, $"not a sample line: {line}");
            var name = match.Groups["name"].Value;
            var family = FamilyOf(name, types);
            Assert.True(types.ContainsKey(family), $"{name} has no TYPE line before it");
            Assert.True(help.Contains(family), $"{name} has no HELP line before it");
            var value = match.Groups["value"].Value switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                var v => double.Parse(v, NumberStyles.Float, CultureInfo.InvariantCulture),
            };
            samples.Add(new Sample(name, ParseLabels(match.Groups["labels"].Value, line), value));
        }

        return samples;
    }

    /// <summary>The one sample called <paramref name="name"/> with exactly these label values among its labels.</summary>
    public static double Value(this IReadOnlyList<Sample> samples, string name, params (string Label, string Value)[] labels)
    {
        var matches = samples
            .Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Label, out var v) && v == l.Value))
            .ToList();
        Assert.True(matches.Count == 1, $"{matches.Count} samples of {name} with {string.Join(',', labels)}");
        return matches[0].Value;
    }

    private static string FamilyOf(string name, Dictionary<string, string> types)
    {
        foreach (var suffix in new[] { "_bucket", "_sum", "_count" })
        {
            if (name.EndsWith(suffix, StringComparison.Ordinal) && types.TryGetValue(name[..^suffix.Length], out var type)
                && type is "histogram" or "summary")
            {
                return name[..^suffix.Length];
            }
        }

        return name;
    }

    private static Dictionary<string, string> ParseLabels(string labels, string line)
    {
        var result = new Dictionary<string, string>();
        var i = 0;
        while (i < labels.Length)
        {
            var eq = labels.IndexOf("=\"", i, StringComparison.Ordinal);
            Assert.True(eq > i, $"bad labels: {line}");
            var name = labels[i..eq];
            Assert.Matches("^[a-zA-Z_][a-zA-Z0-9_]*$", name);
            var value = new StringBuilder();
            i = eq + 2;
            while (labels[i] != '"')
            {
                if (labels[i] == '\\')
                {
                    i++;
                    value.Append(labels[i] switch
                    {
                        'n' => '\n',
                        '\\' => '\\',
                        '"' => '"',
                        var c => throw new Xunit.Sdk.XunitException($"bad escape \\{c}: {line}"),
                    });
                }
                else
                {
                    value.Append(labels[i]);
                }

                i++;
            }

            Assert.True(result.TryAdd(name, value.ToString()), $"label {name} twice: {line}");
            i++;
            if (i < labels.Length)
            {
                Assert.Equal(',', labels[i]);
                i++;
            }
        }

        return result;
    }

    [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})? (?<value>\S+)$""")]
    private static partial Regex SampleLine();
}
