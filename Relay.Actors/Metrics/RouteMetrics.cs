using System.Collections.Concurrent;
using System.Diagnostics;
using Relay.Actors.Circuits;
using Relay.Actors.Listening.Admission;

namespace Relay.Actors.Metrics;

/// <summary>
/// The counters of one route. A circuit is handed this object once, when it is accepted,
/// and touches it only at its start, its upstream connect and its end: never per chunk.
/// Every field is updated with <see cref="Interlocked"/> because the route's circuits run
/// on every core. Live bytes are not counted here: the scrape adds them from the circuit
/// table (<see cref="RelayMetrics.Collect"/>), so the data path pays nothing for them.
/// </summary>
public sealed class RouteMetrics
{
    /// <summary>Upper bounds of the upstream connect latency buckets, in seconds.</summary>
    public static readonly IReadOnlyList<double> ConnectBuckets =
        [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

    /// <summary>Every reason in <see cref="CloseReasons"/>, in the order the exposition lists them.</summary>
    public static readonly IReadOnlyList<string> KnownReasons =
    [
        CloseReasons.Complete, CloseReasons.ClientReset, CloseReasons.UpstreamReset, CloseReasons.ClientError,
        CloseReasons.UpstreamError, CloseReasons.UpstreamRefused, CloseReasons.UpstreamUnreachable,
        CloseReasons.UpstreamDnsFailed, CloseReasons.ConnectTimeout, CloseReasons.IdleTimeout,
        CloseReasons.HalfClosedTimeout, CloseReasons.Aborted, CloseReasons.Shutdown, CloseReasons.InternalError,
        CloseReasons.DestinationDenied, CloseReasons.NoOriginalDestination,
    ];

    // Null circuits (see OnCircuitClosed) apart from the rest, per reason: the exposition adds
    // the two for the closed count and takes the rest alone for errors. Two counters that
    // only grow keep every sum of them growing; a difference of them would not.
    private readonly long[] _closedByReason = new long[KnownReasons.Count];
    private readonly long[] _nullByReason = new long[KnownReasons.Count];
    private readonly long[] _refusedByReason = new long[RefusalReasons.All.Count];

    // An Abort may carry a reason outside the catalogue; rare, so a dictionary is fine there.
    private readonly ConcurrentDictionary<string, StrongBox> _closedByOtherReason = new(StringComparer.Ordinal);

    // One slot per bucket plus the +Inf overflow; not cumulative (the exposition sums them).
    private readonly long[] _connectBuckets = new long[ConnectBuckets.Count + 1];
    private long _connectSumNanos;
    private long _accepted;
    private long _active;
    private long _total;
    private long _handedOver;
    private long _closedBytesUp;
    private long _closedBytesDown;
    private long _reportedBytesUp;
    private long _reportedBytesDown;

    public RouteMetrics(string route)
    {
        ArgumentException.ThrowIfNullOrEmpty(route);
        Route = route;
    }

    public string Route { get; }

    /// <summary>Connections accepted on the route's socket, including ones that reset before a circuit started.</summary>
    public long Accepted => Volatile.Read(ref _accepted);

    /// <summary>Circuits started and not yet closed.</summary>
    public long Active => Volatile.Read(ref _active);

    /// <summary>Circuits ever started.</summary>
    public long Total => Volatile.Read(ref _total);

    /// <summary>A connection was accepted on the route (before anything can fail).</summary>
    public void OnAccepted() => Interlocked.Increment(ref _accepted);

    /// <summary>
    /// An accepted connection was refused before it became a circuit (access list, a limit,
    /// a bad PROXY header); <paramref name="reason"/> is one of <see cref="RefusalReasons"/>.
    /// </summary>
    public void OnRefused(string reason)
    {
        for (var i = 0; i < RefusalReasons.All.Count; i++)
        {
            if (string.Equals(RefusalReasons.All[i], reason, StringComparison.Ordinal))
            {
                Interlocked.Increment(ref _refusedByReason[i]);
                return;
            }
        }
    }

    /// <summary>Refused connections per <see cref="RefusalReasons"/> string, zeros included.</summary>
    public IReadOnlyList<KeyValuePair<string, long>> RefusedByReason()
    {
        var refused = new KeyValuePair<string, long>[RefusalReasons.All.Count];
        for (var i = 0; i < refused.Length; i++)
        {
            refused[i] = new(RefusalReasons.All[i], Volatile.Read(ref _refusedByReason[i]));
        }

        return refused;
    }

    /// <summary>A circuit was started for an accepted connection.</summary>
    public void OnCircuitStarted()
    {
        Interlocked.Increment(ref _total);
        Interlocked.Increment(ref _active);
    }

    /// <summary>The upstream connect succeeded after <paramref name="stopwatchTicks"/> (<see cref="Stopwatch"/> ticks).</summary>
    public void OnUpstreamConnected(long stopwatchTicks)
    {
        var seconds = (double)stopwatchTicks / Stopwatch.Frequency;
        var bucket = 0;
        while (bucket < ConnectBuckets.Count && seconds > ConnectBuckets[bucket])
        {
            bucket++;
        }

        Interlocked.Increment(ref _connectBuckets[bucket]);
        Interlocked.Add(ref _connectSumNanos, (long)(seconds * 1e9));
    }

    /// <summary>
    /// A circuit ended with <paramref name="reason"/> after moving the given bytes.
    /// <paramref name="isNull"/>: a null circuit of a route whose <c>null-circuits</c> is quiet
    /// (a balancer's check), counted in the closed and null totals but never as an error.
    /// </summary>
    public void OnCircuitClosed(string reason, long bytesUp, long bytesDown, bool isNull = false)
    {
        Interlocked.Add(ref _closedBytesUp, bytesUp);
        Interlocked.Add(ref _closedBytesDown, bytesDown);
        var index = IndexOf(reason);
        if (index >= 0)
        {
            Interlocked.Increment(ref (isNull ? _nullByReason : _closedByReason)[index]);
        }
        else
        {
            Interlocked.Increment(ref _closedByOtherReason.GetOrAdd(reason, _ => new StrongBox()).Value);
        }

        Interlocked.Decrement(ref _active);
    }

    /// <summary>
    /// A circuit left this node in a handover after moving these bytes here: it is no longer
    /// active, and its bytes stay counted, as a closed circuit's do.
    /// </summary>
    public void OnCircuitHandedOver(long bytesUp, long bytesDown)
    {
        Interlocked.Add(ref _closedBytesUp, bytesUp);
        Interlocked.Add(ref _closedBytesDown, bytesDown);
        Interlocked.Increment(ref _handedOver);
        Interlocked.Decrement(ref _active);
    }

    /// <summary>
    /// A circuit handed over from another node now runs here. Its counters carry the bytes it
    /// moved there (<c>GET /circuits</c> and its close line show its whole life), which this
    /// node did not move: they are taken off here, so the route's byte totals on this node
    /// count only bytes this node moved.
    /// </summary>
    public void OnCircuitRestored(long carriedUp, long carriedDown)
    {
        Interlocked.Add(ref _closedBytesUp, -carriedUp);
        Interlocked.Add(ref _closedBytesDown, -carriedDown);
        Interlocked.Increment(ref _active);
    }

    /// <summary>Circuits that left this node for another in a handover.</summary>
    public long HandedOver => Volatile.Read(ref _handedOver);

    /// <summary>
    /// The route's totals with <paramref name="liveUp"/>/<paramref name="liveDown"/> (bytes of
    /// its open circuits) added.
    /// </summary>
    internal RouteSample Sample(long liveUp, long liveDown)
    {
        var reasons = new List<KeyValuePair<string, long>>(KnownReasons.Count + _closedByOtherReason.Count);
        var errors = new List<KeyValuePair<string, long>>(KnownReasons.Count + _closedByOtherReason.Count);
        long nulls = 0;
        for (var i = 0; i < KnownReasons.Count; i++)
        {
            var nullCount = Volatile.Read(ref _nullByReason[i]);
            var rest = Volatile.Read(ref _closedByReason[i]);
            nulls += nullCount;
            reasons.Add(new(KnownReasons[i], rest + nullCount));
            if (KnownReasons[i] != CloseReasons.Complete)
            {
                errors.Add(new(KnownReasons[i], rest));
            }
        }

        foreach (var (reason, count) in _closedByOtherReason.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var value = Volatile.Read(ref count.Value);
            reasons.Add(new(reason, value));
            errors.Add(new(reason, value));
        }

        // Non-cumulative slots summed here, and the count taken from the same reads, so the
        // +Inf bucket always equals _count as Prometheus requires.
        var cumulative = new long[_connectBuckets.Length];
        long running = 0;
        for (var i = 0; i < _connectBuckets.Length; i++)
        {
            running += Volatile.Read(ref _connectBuckets[i]);
            cumulative[i] = running;
        }

        return new RouteSample(
            Route,
            Accepted,
            Active,
            Total,
            Monotonic(ref _reportedBytesUp, Volatile.Read(ref _closedBytesUp) + liveUp),
            Monotonic(ref _reportedBytesDown, Volatile.Read(ref _closedBytesDown) + liveDown),
            reasons,
            cumulative,
            Volatile.Read(ref _connectSumNanos) / 1e9)
        {
            ErrorsByReason = errors,
            NullCircuits = nulls,
        };
    }

    /// <summary>
    /// A circuit's bytes move from "live" (its table entry) to "closed" (this object) when it
    /// ends, and a scrape racing that move can see them twice or not at all. A counter that
    /// goes down reads as a reset to Prometheus' rate(), a huge false spike; so the reported
    /// value never goes below the last one reported, and catches up on the next scrape.
    /// </summary>
    private static long Monotonic(ref long reported, long computed)
    {
        while (true)
        {
            var last = Volatile.Read(ref reported);
            if (computed <= last)
            {
                return last;
            }

            if (Interlocked.CompareExchange(ref reported, computed, last) == last)
            {
                return computed;
            }
        }
    }

    private static int IndexOf(string reason)
    {
        for (var i = 0; i < KnownReasons.Count; i++)
        {
            if (string.Equals(KnownReasons[i], reason, StringComparison.Ordinal))
            {
                return i;
            }
        }

        return -1;
    }

    private sealed class StrongBox
    {
        public long Value;
    }
}

/// <summary>One route's counters at one scrape.</summary>
/// <param name="BytesUp">Client to upstream, closed and open circuits together.</param>
/// <param name="ClosedByReason">Closed circuits per <see cref="CloseReasons"/> string, zeros included, null circuits included.</param>
/// <param name="ConnectBucketCounts">Cumulative counts per <see cref="RouteMetrics.ConnectBuckets"/> bound, then +Inf.</param>
/// <param name="ConnectSumSeconds">Sum of every observed upstream connect time.</param>
public sealed record RouteSample(
    string Route,
    long Accepted,
    long Active,
    long Total,
    long BytesUp,
    long BytesDown,
    IReadOnlyList<KeyValuePair<string, long>> ClosedByReason,
    IReadOnlyList<long> ConnectBucketCounts,
    double ConnectSumSeconds)
{
    /// <summary>Observations in the connect histogram (the +Inf bucket).</summary>
    public long ConnectCount => ConnectBucketCounts[^1];

    /// <summary>Closed circuits per reason other than complete, quiet null circuits left out.</summary>
    public IReadOnlyList<KeyValuePair<string, long>> ErrorsByReason { get; init; } = [];

    /// <summary>Quiet null circuits closed (also in <see cref="ClosedByReason"/>, never in <see cref="ErrorsByReason"/>).</summary>
    public long NullCircuits { get; init; }
}
