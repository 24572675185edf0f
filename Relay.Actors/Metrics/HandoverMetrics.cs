using Relay.Actors.Handover;

namespace Relay.Actors.Metrics;

/// <summary>
/// The handover counters of one node: handovers by result, the pause of each completed one
/// (a histogram, so an operator can see the tail), and the circuits moved away. Touched once
/// per handover, never on the data path.
/// </summary>
public sealed class HandoverMetrics
{
    /// <summary>Upper bounds of the pause buckets, in seconds: the target is tens of milliseconds, a second is slow.</summary>
    public static readonly IReadOnlyList<double> PauseBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];

    /// <summary>Every result, in the order the exposition lists them.</summary>
    public static readonly IReadOnlyList<string> Results =
        [HandoverProtocol.Results.Completed, HandoverProtocol.Results.RolledBack, HandoverProtocol.Results.Failed];

    private readonly long[] _byResult = new long[Results.Count];
    private readonly long[] _pauseBuckets = new long[PauseBuckets.Count + 1];
    private long _pauseSumMicros;
    private long _circuitsHandedOver;

    internal void OnHandover(HandoverProtocol.Outcome outcome)
    {
        var index = Array.IndexOf((string[])[.. Results], outcome.Result);
        if (index >= 0)
        {
            Interlocked.Increment(ref _byResult[index]);
        }
    }

    internal void OnCircuitsHandedOver(int circuits, double pauseSeconds)
    {
        Interlocked.Add(ref _circuitsHandedOver, circuits);
        var bucket = 0;
        while (bucket < PauseBuckets.Count && pauseSeconds > PauseBuckets[bucket])
        {
            bucket++;
        }

        Interlocked.Increment(ref _pauseBuckets[bucket]);
        Interlocked.Add(ref _pauseSumMicros, (long)(pauseSeconds * 1e6));
    }

    /// <summary>Handovers that ended with <paramref name="result"/>.</summary>
    public long Count(string result) => Volatile.Read(ref _byResult[Array.IndexOf((string[])[.. Results], result)]);

    /// <summary>Circuits this node handed to another.</summary>
    public long CircuitsHandedOver => Volatile.Read(ref _circuitsHandedOver);

    /// <summary>Cumulative counts per <see cref="PauseBuckets"/> bound, then +Inf.</summary>
    public long[] CumulativePauseBuckets()
    {
        var cumulative = new long[_pauseBuckets.Length];
        long running = 0;
        for (var i = 0; i < _pauseBuckets.Length; i++)
        {
            running += Volatile.Read(ref _pauseBuckets[i]);
            cumulative[i] = running;
        }

        return cumulative;
    }

    public double PauseSumSeconds => Volatile.Read(ref _pauseSumMicros) / 1e6;
}
