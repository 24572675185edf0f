namespace Relay.Actors.Listening;

/// <summary>
/// Spreads new circuits over the per-core dispatchers: the core with the fewest live
/// circuits wins, ties go to the core that accepted (Kestrel spreads connections over its
/// IOQueues by load the same way). Shared by every listener of a node, so routes balance
/// together.
/// </summary>
public sealed class CoreBalancer
{
    private readonly long[] _active;
    private readonly long[] _total;

    public CoreBalancer(int cores)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(cores, 1);
        _active = new long[cores];
        _total = new long[cores];
    }

    public int Cores => _active.Length;

    /// <summary>Live circuits per core, for metrics and the demo's distribution table.</summary>
    public long ActiveOn(int core) => Volatile.Read(ref _active[core]);

    /// <summary>Circuits ever started on <paramref name="core"/>.</summary>
    public long TotalOn(int core) => Volatile.Read(ref _total[core]);

    /// <summary>
    /// Chooses a core for a new circuit and counts the circuit on it: <paramref name="preferred"/>
    /// (the accepting core) unless another core has fewer live circuits, so an acceptor keeps
    /// the circuit on its own thread when the cores are balanced.
    /// </summary>
    public int Acquire(int preferred)
    {
        var start = preferred;
        var best = start;
        var bestLoad = Volatile.Read(ref _active[start]);
        for (var i = 1; i < _active.Length && bestLoad > 0; i++)
        {
            var core = (start + i) % _active.Length;
            var load = Volatile.Read(ref _active[core]);
            if (load < bestLoad)
            {
                best = core;
                bestLoad = load;
            }
        }

        Interlocked.Increment(ref _active[best]);
        Interlocked.Increment(ref _total[best]);
        return best;
    }

    /// <summary>The circuit on <paramref name="core"/> has closed.</summary>
    public void Release(int core) => Interlocked.Decrement(ref _active[core]);
}
