namespace Relay.Tests.Support;

/// <summary>
/// Waits for a state that nothing signals, in tests that have no TestKit (real sockets, child
/// processes, network namespaces, several nodes): polls a condition and, past the deadline,
/// fails naming what it waited for. An actor test with a TestKit uses its
/// <c>AwaitConditionAsync</c>/<c>AwaitAssertAsync</c> instead, and where something does signal (a
/// task, a log line) the test awaits that.
/// </summary>
internal static class Eventually
{
    /// <summary>The default deadline: generous, so a loaded 2-core machine does not fail a test that is only slow.</summary>
    public static readonly TimeSpan Within = TimeSpan.FromSeconds(10);

    // Short enough that a wait adds little to a test's time, long enough not to compete with the
    // relay it waits on; probes that start a process pass a longer interval.
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(20);

    /// <summary>As <see cref="Holds(Func{Task{bool}}, string, TimeSpan?, Func{string}?, TimeSpan?)"/>, for a condition read without waiting.</summary>
    public static Task Holds(Func<bool> condition, string what, TimeSpan? within = null, Func<string>? state = null, TimeSpan? every = null) =>
        Holds(() => Task.FromResult(condition()), what, within, state, every);

    /// <summary>
    /// Until <paramref name="condition"/> holds, asking it every <paramref name="every"/> (20 ms);
    /// after <paramref name="within"/> (10 s) fails with <paramref name="what"/> and, when given,
    /// the <paramref name="state"/> things ended in.
    /// </summary>
    public static async Task Holds(Func<Task<bool>> condition, string what, TimeSpan? within = null,
        Func<string>? state = null, TimeSpan? every = null)
    {
        var limit = within ?? Within;
        var deadline = DateTime.UtcNow + limit;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"timed out after {limit.TotalSeconds:0.#} s waiting for {what}{(state is null ? "" : ": " + state())}");
            }

            await Task.Delay(every ?? Interval);
        }
    }
}
