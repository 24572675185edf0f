using System.Diagnostics;

namespace Relay.Tests.Logging;

/// <summary>The capture the logging tests read: whole lines only, a wait woken by the line it waits for.</summary>
public sealed class LogCaptureTests
{
    [Fact]
    public async Task A_wait_ends_when_a_line_written_in_pieces_is_complete_and_not_before()
    {
        using var capture = new LogCapture();
        var waiting = Task.Run(() => capture.WaitForLine(l => l.Contains("CircuitLost")));

        capture.Write("... CircuitLost circuit ");
        await Task.Delay(100); // time for a wait that wrongly took a partial line to end
        Assert.False(waiting.IsCompleted, "a line without its newline is still being written");

        var clock = Stopwatch.StartNew();
        capture.Write("c-7\n");
        Assert.Equal("... CircuitLost circuit c-7", await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"the wait ended {clock.Elapsed.TotalMilliseconds:0} ms after its line");
    }

    [Fact]
    public void A_wait_that_times_out_names_what_it_waited_for_and_what_was_captured()
    {
        using var capture = new LogCapture();
        capture.Write("one\ntwo\n");

        var failure = Assert.ThrowsAny<Exception>(() => capture.WaitForLines(l => l.StartsWith('t'), 2, TimeSpan.FromMilliseconds(100)));

        Assert.Contains("2 log line(s) matching: l => l.StartsWith('t') (1 matched)", failure.Message);
        Assert.EndsWith("captured:\none\ntwo", failure.Message);
    }
}
