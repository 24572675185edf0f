using System.Diagnostics;

namespace Relay.Actors.Listening.Admission;

/// <summary>
/// A token bucket as the generic cell rate algorithm (GCRA, ITU-T I.371): one 64-bit
/// "theoretical arrival time" updated with compare-and-swap, so the acceptors of every core
/// share it without a lock. The bucket holds <c>burst</c> tokens and refills at
/// <c>rate</c> per second.
/// </summary>
internal sealed class RateLimiter
{
    private readonly long _interval;  // Stopwatch ticks between tokens
    private readonly long _tolerance; // how far ahead of now the arrival time may run: the burst
    private long _theoreticalArrival;

    public RateLimiter(int ratePerSecond, int burst)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ratePerSecond, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(burst, 1);
        RatePerSecond = ratePerSecond;
        _interval = Math.Max(1, Stopwatch.Frequency / ratePerSecond);
        _tolerance = _interval * (burst - 1);
    }

    public int RatePerSecond { get; }

    /// <summary>Takes a token if one is there; <paramref name="now"/> in <see cref="Stopwatch"/> ticks.</summary>
    public bool TryTake(long now)
    {
        while (true)
        {
            var arrival = Volatile.Read(ref _theoreticalArrival);
            var start = Math.Max(arrival, now);
            if (start - now > _tolerance)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _theoreticalArrival, start + _interval, arrival) == arrival)
            {
                return true;
            }
        }
    }

    /// <summary>Gives back a token taken for a connection that a later check refused.</summary>
    public void GiveBack() => Interlocked.Add(ref _theoreticalArrival, -_interval);
}
