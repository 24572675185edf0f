namespace Relay.Actors.Listening.Admission;

/// <summary>
/// At most one log line per interval, counting the events not logged in between, so a flood
/// of refused clients costs one line a second instead of one per connection. Lock-free: the
/// acceptors of every core share one throttle per route.
/// </summary>
internal sealed class LogThrottle(long intervalMs = 1000)
{
    private long _nextMs = long.MinValue;
    private long _suppressed;

    /// <summary>
    /// True when this event should be logged; <paramref name="suppressed"/> is then how many
    /// were not logged since the last line. False counts the event as suppressed.
    /// </summary>
    public bool ShouldLog(out long suppressed)
    {
        var now = Environment.TickCount64;
        var next = Volatile.Read(ref _nextMs);
        if (now >= next && Interlocked.CompareExchange(ref _nextMs, now + intervalMs, next) == next)
        {
            suppressed = Interlocked.Exchange(ref _suppressed, 0);
            return true;
        }

        Interlocked.Increment(ref _suppressed);
        suppressed = 0;
        return false;
    }
}
