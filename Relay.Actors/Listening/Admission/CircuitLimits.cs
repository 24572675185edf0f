using System.Collections.Concurrent;
using System.Net;
using Relay.Actors.Configuration;

namespace Relay.Actors.Listening.Admission;

/// <summary>
/// INTERNAL API. The counters behind one set of <see cref="LimitSettings"/>: a route's or the
/// node's. The acceptors of every core use it at once, so every count is an
/// <see cref="Interlocked"/> compare-and-swap: no lock on the accept path. Circuits are
/// counted even while no limit is set, so a limit switched on later starts from the truth.
/// </summary>
internal sealed class CircuitLimits
{
    private readonly ConcurrentDictionary<IPAddress, SourceCount> _perSource = new();
    private volatile LimitSettings _settings = LimitSettings.None;
    private volatile RateLimiter? _rate;
    private long _active;

    public LimitSettings Settings => _settings;

    /// <summary>Circuits counted now (admitted and not yet released).</summary>
    public long Active => Volatile.Read(ref _active);

    /// <summary>Client addresses holding at least one counted circuit (only while a per-source limit is set).</summary>
    public int TrackedSources => _perSource.Count;

    /// <summary>The rate limiter, or null when there is no rate limit.</summary>
    public RateLimiter? Rate => _rate;

    private readonly Lock _applyGate = new();

    public void Apply(LimitSettings settings)
    {
        // Under a lock: every acceptor of the route applies the settings on its first accept,
        // and two doing it at once must not each install a fresh limiter (the second would
        // hand out a second full burst). The hot path reads _rate without it.
        lock (_applyGate)
        {
            if (settings == _settings)
            {
                return;
            }

            var rate = _rate;
            _rate = settings.AcceptRate is not { } perSecond ? null
                : rate?.RatePerSecond == perSecond ? rate
                : new RateLimiter(perSecond, burst: perSecond);
            _settings = settings;
        }
    }

    /// <summary>Counts a circuit unless <see cref="LimitSettings.MaxCircuits"/> are open already.</summary>
    public bool TryOpen() => TryIncrement(ref _active, _settings.MaxCircuits);

    public void Close() => Interlocked.Decrement(ref _active);

    /// <summary>True while circuits must be counted per client address.</summary>
    public bool LimitsSources => _settings.MaxCircuitsPerSource is not null;

    /// <summary>Circuits counted for <paramref name="source"/> now.</summary>
    public int OpenFrom(IPAddress source) => _perSource.TryGetValue(source, out var box) ? Math.Max(0, Volatile.Read(ref box.Value)) : 0;

    /// <summary>Counts a circuit whatever the limit (one admitted on another node and handed over here).</summary>
    public void ForceOpen() => Interlocked.Increment(ref _active);

    /// <summary>Counts a circuit from <paramref name="source"/> unless it has its maximum open.</summary>
    public bool TryOpenSource(IPAddress source) => OpenSource(source, _settings.MaxCircuitsPerSource);

    /// <summary>Counts a circuit from <paramref name="source"/> whatever the limit.</summary>
    public void ForceOpenSource(IPAddress source) => OpenSource(source, max: null);

    private bool OpenSource(IPAddress source, int? max)
    {
        while (true)
        {
            var box = _perSource.GetOrAdd(source, static _ => new SourceCount());
            if (TryIncrement(ref box.Value, max, out var retired))
            {
                return true;
            }

            if (!retired)
            {
                return false;
            }

            // The box was emptied and retired by a release racing us; it is being removed.
            // Remove it ourselves (only that box) and count in a fresh one.
            _perSource.TryRemove(new KeyValuePair<IPAddress, SourceCount>(source, box));
        }
    }

    public void CloseSource(IPAddress source)
    {
        // The releasing circuit's own count keeps the box alive (a box is retired only at
        // zero), so the box found here is the one it was counted in.
        if (!_perSource.TryGetValue(source, out var box))
        {
            return;
        }

        if (Interlocked.Decrement(ref box.Value) == 0 && Interlocked.CompareExchange(ref box.Value, -1, 0) == 0)
        {
            // Retired at zero: no one can count in it any more, so the table forgets the
            // address and holds no entry for clients that have gone.
            _perSource.TryRemove(new KeyValuePair<IPAddress, SourceCount>(source, box));
        }
    }

    private static bool TryIncrement(ref long counter, int? max)
    {
        if (max is not { } limit)
        {
            Interlocked.Increment(ref counter);
            return true;
        }

        while (true)
        {
            var value = Volatile.Read(ref counter);
            if (value >= limit)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref counter, value + 1, value) == value)
            {
                return true;
            }
        }
    }

    private static bool TryIncrement(ref int counter, int? max, out bool retired)
    {
        retired = false;
        while (true)
        {
            var value = Volatile.Read(ref counter);
            if (value < 0)
            {
                retired = true;
                return false;
            }

            if (max is { } limit && value >= limit)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref counter, value + 1, value) == value)
            {
                return true;
            }
        }
    }

    private sealed class SourceCount
    {
        // Circuits counted; -1 once retired (emptied and leaving the table).
        public int Value;
    }
}
