using System.Net.Sockets;
using Akka.Actor;

namespace Relay.Actors.Circuits;

/// <summary>
/// One circuit for a <see cref="CircuitSupervisor"/> to serve: the entry its acceptor made, the
/// accepted (or restored) client socket, and the hook to call when it closes. The acceptor gives
/// it to a new supervisor through its props, or to a parked one as a message.
/// </summary>
/// <param name="Entry">The registry entry of the circuit.</param>
/// <param name="Client">The client socket; the supervisor owns it from now on.</param>
/// <param name="OnClosed">Called once, on the circuit's thread, when the circuit has closed.</param>
/// <param name="Restored">The circuit's restored sockets and owed bytes, after a handover; null for an accepted one.</param>
public sealed record CircuitStart(CircuitEntry Entry, Socket Client, Action<CircuitEntry>? OnClosed, RestoredCircuit? Restored = null)
    : INoSerializationVerificationNeeded;

/// <summary>
/// INTERNAL API. The supervisors of an acceptor's closed circuits, parked with their reader and
/// writer children until the acceptor starts its next circuit on the same core.
/// <para>
/// Every connection still gets a supervisor with reader and writer children for its whole life,
/// and no actor serves two live circuits; what a parked supervisor saves is Akka's lifecycle of
/// three actors per connection (cell, mailbox and path made, the parent's children container
/// added to and removed from, create, terminate and death-watch system messages). Measured
/// before this: one actor's life cost 5-10 µs of user CPU and 3.3 KB of allocation per
/// connection (ops/bench/RESULTS.md, "What remains"), about the relay's whole gap to HAProxy
/// in connections per second.
/// </para>
/// <para>
/// A supervisor parks itself only once its reader and writer have answered
/// <see cref="PumpProtocol.Park"/>: every message of the old circuit is then behind it, so
/// the next circuit starts with empty mailboxes. Parking runs on the circuit's core thread and
/// taking on the acceptor's, hence the lock (uncontended, as each acceptor takes mostly for its
/// own core). The lot is bounded: a burst of closes beyond <see cref="Capacity"/> stops the
/// supervisors that find it full, so an idle relay does not keep a burst's worth of actors.
/// </para>
/// </summary>
internal sealed class CircuitParking
{
    /// <summary>Parked supervisors an acceptor keeps at most, over all cores: about 2-3 KB each.</summary>
    public const int DefaultCapacity = 256;

    private readonly Stack<IActorRef>[] _byCore;
    private readonly object _gate = new();
    private int _count;
    private bool _closed;

    public CircuitParking(int cores, int capacity = DefaultCapacity)
    {
        _byCore = new Stack<IActorRef>[cores];
        for (var core = 0; core < cores; core++)
        {
            _byCore[core] = new Stack<IActorRef>();
        }

        Capacity = capacity;
    }

    public int Capacity { get; }

    /// <summary>How many supervisors wait here now.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _count;
            }
        }
    }

    /// <summary>
    /// Parks <paramref name="supervisor"/>, which runs on <paramref name="core"/>'s dispatcher.
    /// False when the lot is full or closed: the supervisor stops instead.
    /// </summary>
    public bool TryPark(int core, IActorRef supervisor)
    {
        lock (_gate)
        {
            if (_closed || _count >= Capacity || (uint)core >= (uint)_byCore.Length)
            {
                return false;
            }

            _byCore[core].Push(supervisor);
            _count++;
            return true;
        }
    }

    /// <summary>A parked supervisor on <paramref name="core"/>'s dispatcher, or null when none waits there.</summary>
    public IActorRef? TryTake(int core)
    {
        lock (_gate)
        {
            if ((uint)core >= (uint)_byCore.Length)
            {
                return null;
            }

            // A parked supervisor stops only through Close (its acceptor retiring or stopping,
            // after which nothing is taken), so whatever is here is alive.
            if (!_byCore[core].TryPop(out var supervisor))
            {
                return null;
            }

            _count--;
            return supervisor;
        }
    }

    /// <summary>No more parking (the acceptor retires): the supervisors parked now, for the caller to stop.</summary>
    public List<IActorRef> Close()
    {
        lock (_gate)
        {
            _closed = true;
            var all = new List<IActorRef>(_count);
            foreach (var parked in _byCore)
            {
                all.AddRange(parked);
                parked.Clear();
            }

            _count = 0;
            return all;
        }
    }
}
