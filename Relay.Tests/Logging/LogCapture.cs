using System.Text;
using System.Text.Json;

namespace Relay.Tests.Logging;

/// <summary>
/// A <see cref="TextWriter"/> the logger writes to, read back line by line from the test
/// thread. The sink writes on Akka's logger thread, hence the lock.
/// </summary>
internal sealed class LogCapture : TextWriter
{
    private readonly StringBuilder _text = new();
    private readonly Lock _lock = new();

    public override Encoding Encoding => Encoding.UTF8;

    public override void Write(char value)
    {
        lock (_lock)
        {
            _text.Append(value);
        }
    }

    public override void Write(string? value)
    {
        lock (_lock)
        {
            _text.Append(value);
        }
    }

    /// <summary>
    /// The complete lines written so far. A sink writes one event in several pieces (the text
    /// formatter writes the message and the newline apart), so the text after the last newline
    /// is a line still being written: it is left out, or a match on "CircuitLost" could return
    /// "... CircuitLost circuit " without its id (seen under a busy loop).
    /// </summary>
    public IReadOnlyList<string> Lines()
    {
        lock (_lock)
        {
            var text = _text.ToString();
            return text[..(text.LastIndexOf('\n') + 1)].Split('\n', StringSplitOptions.RemoveEmptyEntries);
        }
    }

    /// <summary>The first complete line that matches, waiting for the logger actor to write it.</summary>
    public string WaitForLine(Func<string, bool> match, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            var line = Lines().FirstOrDefault(match);
            if (line is not null)
            {
                return line;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new Xunit.Sdk.XunitException(
                    $"no matching log line within the timeout; captured:\n{string.Join('\n', Lines())}");
            }

            Thread.Sleep(20);
        }
    }

    /// <summary>The first CLEF line that parses and matches.</summary>
    public JsonElement WaitForJson(Func<JsonElement, bool> match, TimeSpan? timeout = null)
    {
        var line = WaitForLine(l => TryParse(l) is { } json && match(json), timeout);
        return TryParse(line)!.Value;
    }

    /// <summary>One captured line as JSON (CLEF), or null when it is not JSON.</summary>
    internal static JsonElement? TryParse(string line)
    {
        try
        {
            using var document = JsonDocument.Parse(line);
            return document.RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
