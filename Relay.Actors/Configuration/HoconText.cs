using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Akka.Configuration;

namespace Relay.Actors.Configuration;

/// <summary>
/// INTERNAL API. Parses HOCON text with Akka's parser and turns its failures into one-line
/// <see cref="RelayConfigException"/>s that name the source and, where known, the line.
/// </summary>
internal static partial class HoconText
{
    // Akka 1.5's parser loops forever on some unbalanced input (measured: "x = [1, 2\n y = }"
    // never returns), so brackets are checked first and the parse itself runs under a limit.
    private static readonly TimeSpan ParseLimit = TimeSpan.FromSeconds(10);

    public static Config Parse(string text, string source)
    {
        CheckBrackets(text, source);
        var parse = Task.Run(() => ConfigurationFactory.ParseString(text));
        try
        {
            if (!parse.Wait(ParseLimit))
            {
                throw new RelayConfigException(source, null,
                    "HOCON syntax error: the parser did not finish; check brackets, quotes and commas");
            }

            return parse.Result;
        }
        catch (AggregateException e) when (e.InnerException is not null)
        {
            throw Describe(e.InnerException, text, source);
        }
    }

    /// <summary>The first line of a message, for errors that must fit on one line.</summary>
    public static string FirstLine(string message)
    {
        var line = message.Split('\n', 2)[0].Trim();
        return line.EndsWith(':') ? line[..^1] : line;
    }

    /// <summary>A HOCON quoted string: safe for any token or address a flag carries.</summary>
    public static string Quote(string value)
    {
        var sb = new StringBuilder(value.Length + 2).Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default: sb.Append(c); break;
            }
        }

        return sb.Append('"').ToString();
    }

    private static RelayConfigException Describe(Exception e, string text, string source)
    {
        var message = FirstLine(e.Message);
        var position = PositionPattern().Match(message);
        if (position.Success && int.TryParse(position.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var index))
        {
            var (line, column) = LineAndColumn(text, index);
            message = PositionPattern().Replace(message, "").Trim();
            if (index < text.Length && text[index] == ',' && text[..index].TrimEnd().EndsWith('}'))
            {
                message += " (Akka's parser rejects a comma after '}' inside an object: start a new line instead)";
            }

            return new RelayConfigException($"{source}:{line}:{column}", null, $"HOCON syntax error: {message}");
        }

        if (message.Contains("unquoted text value containing assignment character", StringComparison.Ordinal))
        {
            message += " Addresses must be quoted, like listen = \"0.0.0.0:7000\".";
        }

        return new RelayConfigException(source, null, $"HOCON syntax error: {message}");
    }

    private static (int Line, int Column) LineAndColumn(string text, int index)
    {
        int line = 1, column = 1;
        for (var i = 0; i < Math.Min(index, text.Length); i++)
        {
            if (text[i] == '\n')
            {
                line++;
                column = 1;
            }
            else
            {
                column++;
            }
        }

        return (line, column);
    }

    /// <summary>
    /// Checks that every '{' and '[' is closed by its partner, outside strings and comments.
    /// </summary>
    private static void CheckBrackets(string text, string source)
    {
        var open = new Stack<(char Bracket, int Line, int Column)>();
        int line = 1, column = 0;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            column++;
            if (c == '\n')
            {
                line++;
                column = 0;
                continue;
            }

            if (c == '#' || (c == '/' && i + 1 < text.Length && text[i + 1] == '/'))
            {
                while (i + 1 < text.Length && text[i + 1] != '\n')
                {
                    i++;
                }

                continue;
            }

            if (c == '"')
            {
                var triple = string.CompareOrdinal(text, i, "\"\"\"", 0, 3) == 0;
                var (startLine, startColumn) = (line, column);
                var end = triple ? text.IndexOf("\"\"\"", i + 3, StringComparison.Ordinal) : ClosingQuote(text, i);
                if (end < 0)
                {
                    throw new RelayConfigException($"{source}:{startLine}:{startColumn}", null, "HOCON syntax error: this string is never closed");
                }

                var stop = triple ? end + 2 : end;
                for (; i < stop; i++)
                {
                    column++;
                    if (text[i + 1] == '\n')
                    {
                        line++;
                        column = 0;
                    }
                }

                continue;
            }

            if (c is '{' or '[')
            {
                open.Push((c, line, column));
            }
            else if (c is '}' or ']')
            {
                var expected = c == '}' ? '{' : '[';
                if (open.Count == 0)
                {
                    throw new RelayConfigException($"{source}:{line}:{column}", null, $"HOCON syntax error: '{c}' closes nothing");
                }

                var top = open.Pop();
                if (top.Bracket != expected)
                {
                    throw new RelayConfigException($"{source}:{line}:{column}", null,
                        $"HOCON syntax error: '{c}' does not match the '{top.Bracket}' opened at line {top.Line}");
                }
            }
        }

        if (open.Count > 0)
        {
            var top = open.Pop();
            throw new RelayConfigException($"{source}:{top.Line}:{top.Column}", null, $"HOCON syntax error: this '{top.Bracket}' is never closed");
        }
    }

    // A single-line quoted string ends at the next unescaped quote, and never spans a line.
    private static int ClosingQuote(string text, int start)
    {
        for (var i = start + 1; i < text.Length; i++)
        {
            switch (text[i])
            {
                case '\\':
                    i++;
                    break;
                case '"':
                    return i;
                case '\n':
                    return -1;
            }
        }

        return -1;
    }

    [GeneratedRegex(@"\s*at position (\d+)")]
    private static partial Regex PositionPattern();
}
