using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace Relay.Tests.Logging;

/// <summary>
/// A <see cref="TextWriter"/> the logger writes to, read back line by line from the test
/// thread. The sink writes on Akka's logger thread, hence the lock; each line it completes
/// wakes the tests waiting for one, so a wait ends as soon as its line is there.
/// </summary>
internal sealed class LogCapture : TextWriter
{
    private static readonly TimeSpan Within = TimeSpan.FromSeconds(10);

    // Locked by the writer and the readers; waiters sleep on it (Monitor.Wait) until a line completes.
    private readonly object _gate = new();
    private readonly List<string> _lines = new();
    private readonly StringBuilder _partial = new();

    public override Encoding Encoding => Encoding.UTF8;

    public override void Write(char value) => Append(new ReadOnlySpan<char>(in value));

    public override void Write(string? value) => Append(value);

    /// <summary>
    /// The complete lines written so far. A sink writes one event in several pieces (the text
    /// formatter writes the message and the newline apart), so the text after the last newline
    /// is a line still being written: it is left out, or a match on "CircuitLost" could return
    /// "... CircuitLost circuit " without its id (seen under a busy loop).
    /// </summary>
    public IReadOnlyList<string> Lines()
    {
        lock (_gate)
        {
            return _lines.ToArray();
        }
    }

    /// <summary>The first complete line that matches, waiting for the logger actor to write it.</summary>
    /// <param name="awaited">Named in the failure on timeout; the text of <paramref name="match"/> unless given.</param>
    public string WaitForLine(Func<string, bool> match, TimeSpan? timeout = null,
        [CallerArgumentExpression(nameof(match))] string awaited = "") =>
        WaitForLines(match, 1, timeout, awaited)[0];

    /// <summary>
    /// Every complete line that matches, once at least <paramref name="count"/> do, waiting for
    /// the logger actor to write them.
    /// </summary>
    /// <param name="awaited">Named in the failure on timeout; the text of <paramref name="match"/> unless given.</param>
    public IReadOnlyList<string> WaitForLines(Func<string, bool> match, int count, TimeSpan? timeout = null,
        [CallerArgumentExpression(nameof(match))] string awaited = "")
    {
        var limit = timeout ?? Within;
        var deadline = Stopwatch.GetTimestamp() + (long)(limit.TotalSeconds * Stopwatch.Frequency);
        var matched = new List<string>();
        var looked = 0;
        while (true)
        {
            List<string> fresh;
            lock (_gate)
            {
                while (_lines.Count == looked && Remaining(deadline) is var left && left > TimeSpan.Zero)
                {
                    Monitor.Wait(_gate, left);
                }

                fresh = _lines.GetRange(looked, _lines.Count - looked);
            }

            // Matched outside the lock: a match may parse JSON, and the logger thread must not wait on it.
            looked += fresh.Count;
            matched.AddRange(fresh.Where(match));
            if (matched.Count >= count)
            {
                return matched;
            }

            if (Remaining(deadline) <= TimeSpan.Zero)
            {
                throw new Xunit.Sdk.XunitException(
                    $"timed out after {limit.TotalSeconds:0.#} s waiting for {count} log line(s) matching: {awaited} " +
                    $"({matched.Count} matched); captured:\n{string.Join('\n', Lines())}");
            }
        }
    }

    /// <summary>The first CLEF line that parses and matches.</summary>
    /// <param name="awaited">Named in the failure on timeout; the text of <paramref name="match"/> unless given.</param>
    public JsonElement WaitForJson(Func<JsonElement, bool> match, TimeSpan? timeout = null,
        [CallerArgumentExpression(nameof(match))] string awaited = "") =>
        WaitForJsonLines(match, 1, timeout, awaited)[0];

    /// <summary>Every CLEF line that parses and matches, once at least <paramref name="count"/> do.</summary>
    /// <param name="awaited">Named in the failure on timeout; the text of <paramref name="match"/> unless given.</param>
    public IReadOnlyList<JsonElement> WaitForJsonLines(Func<JsonElement, bool> match, int count, TimeSpan? timeout = null,
        [CallerArgumentExpression(nameof(match))] string awaited = "") =>
        WaitForLines(l => TryParse(l) is { } json && match(json), count, timeout, awaited).Select(l => TryParse(l)!.Value).ToList();

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

    private static TimeSpan Remaining(long deadline) => Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);

    /// <summary>Adds <paramref name="text"/>; the lines it completes are kept, and the waiters woken.</summary>
    private void Append(ReadOnlySpan<char> text)
    {
        lock (_gate)
        {
            var end = text.LastIndexOf('\n');
            if (end < 0)
            {
                _partial.Append(text);
                return;
            }

            _partial.Append(text[..end]);
            _lines.AddRange(_partial.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
            _partial.Clear().Append(text[(end + 1)..]);
            Monitor.PulseAll(_gate);
        }
    }
}
