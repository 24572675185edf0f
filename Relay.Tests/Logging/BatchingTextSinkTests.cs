using System.Text;
using Relay.Host.Logging.Internal;
using Serilog.Events;
using Serilog.Formatting.Display;
using Serilog.Parsing;

namespace Relay.Tests.Logging;

public sealed class BatchingTextSinkTests
{
    private static readonly MessageTemplateTextFormatter Formatter = new("{Message:lj}{NewLine}");

    [Fact]
    public void Every_event_emitted_before_Dispose_is_written_in_the_order_of_each_emitting_thread()
    {
        const int PerThread = 5000;
        var output = new CountingWriter();
        var sink = new BatchingTextSink(output, Formatter);

        var emitters = Enumerable.Range(0, 2).Select(t => new Thread(() =>
        {
            for (var i = 0; i < PerThread; i++)
            {
                sink.Emit(Event($"t{t} {i}"));
            }
        })).ToList();
        emitters.ForEach(e => e.Start());
        emitters.ForEach(e => e.Join());
        sink.Dispose();

        var lines = output.Text().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2 * PerThread, lines.Length);
        for (var t = 0; t < 2; t++)
        {
            var prefix = $"t{t} ";
            var seen = lines.Where(l => l.StartsWith(prefix, StringComparison.Ordinal)).Select(l => int.Parse(l[prefix.Length..])).ToList();
            Assert.Equal(Enumerable.Range(0, PerThread), seen);
        }
    }

    [Fact]
    public void A_burst_of_events_is_flushed_in_a_few_writes_not_one_per_line()
    {
        const int Burst = 2000;
        var output = new CountingWriter();
        using var sink = new BatchingTextSink(output, Formatter);

        for (var i = 0; i < Burst; i++)
        {
            sink.Emit(Event($"line {i}"));
        }

        // The writer flushes after the last line of a drain: all lines written is not yet flushed.
        Assert.True(SpinWait.SpinUntil(() => output.Lines() == Burst && output.Flushes > 0, TimeSpan.FromSeconds(10)),
            $"the writer to write and flush all {Burst} lines (it wrote {output.Lines()}, flushed {output.Flushes} times)");
        // The writer waits a linger for the rest of a burst: a burst emitted in a loop is a few
        // flushes even when the emitting thread is preempted; one per line is what it replaces.
        Assert.InRange(output.Flushes, 1, Burst / 20);
    }

    private static LogEvent Event(string text) =>
        new(DateTimeOffset.UnixEpoch, LogEventLevel.Information, null, new MessageTemplateParser().Parse(text), []);

    // Records flushes; Text and Lines read what was written, under the writer's lock.
    private sealed class CountingWriter : TextWriter
    {
        private readonly StringBuilder _text = new();
        private int _flushes;

        public override Encoding Encoding => Encoding.UTF8;

        public int Flushes => Volatile.Read(ref _flushes);

        public override void Write(char value)
        {
            lock (_text)
            {
                _text.Append(value);
            }
        }

        public override void Write(string? value)
        {
            lock (_text)
            {
                _text.Append(value);
            }
        }

        public override void Flush() => Interlocked.Increment(ref _flushes);

        public string Text()
        {
            lock (_text)
            {
                return _text.ToString();
            }
        }

        public int Lines() => Text().Count(c => c == '\n');
    }
}
