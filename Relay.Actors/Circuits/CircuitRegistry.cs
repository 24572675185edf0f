using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors.Listening.Admission;
using Relay.Actors.Sockets;

namespace Relay.Actors.Circuits;

/// <summary>
/// What the outside world (management HTTP, metrics, the demo) can see of one live circuit.
/// The supervisor that owns the circuit is the only writer of the mutable parts.
/// </summary>
public sealed class CircuitEntry : CircuitCounters
{
    // What the circuit connects to: the object given, then its text once formatted (see Upstream).
    private volatile object _upstream;
    private int _state;
    // OpenedAt as UTC ticks, and the handover history only a moved circuit has: 32 B less per
    // circuit than a DateTimeOffset, an int and a DateTimeOffset? of their own.
    private long _openedAtTicks;
    private MoveHistory? _moves;

    /// <param name="upstream">
    /// What the circuit connects to: a string, or any object (the route's pool, an endpoint)
    /// that is formatted only when <see cref="Upstream"/> is first read. Most circuits are
    /// never listed or logged, so they never pay for the formatting.
    /// </param>
    public CircuitEntry(long id, string route, string node, EndPoint client, object upstream, int core, IActorRef supervisor)
    {
        Id = id;
        Route = route;
        Node = node;
        Client = client;
        _upstream = upstream;
        Core = core;
        Supervisor = supervisor;
        _openedAtTicks = DateTime.UtcNow.Ticks;
    }

    public long Id { get; }

    public string Route { get; }

    public string Node { get; }

    public EndPoint Client { get; }

    /// <summary>
    /// The address the client originally connected to, when a PROXY protocol header named it
    /// (accept-proxy-protocol routes); null otherwise. Passed on in an outgoing header.
    /// </summary>
    public IPEndPoint? ProxiedDestination { get; init; }

    /// <summary>The upstream as configured, then the resolved address once connected.</summary>
    public string Upstream
    {
        get
        {
            var source = _upstream;
            if (source as string is { } text)
            {
                return text;
            }

            // Any reader may format it (every one makes the same text) and keep the text in its
            // place, unless the circuit has moved on to another upstream meanwhile: that one's
            // text is for its first reader to make. No cache object of its own (32 B a circuit).
            text = source.ToString() ?? "";
            Interlocked.CompareExchange(ref _upstream, text, source);
            return text;
        }
    }

    /// <summary>Where the circuit connects now (formatted when first read).</summary>
    internal void SetUpstream(object upstream) => _upstream = upstream;

    /// <summary>Index of the per-core dispatcher the circuit's actors run on.</summary>
    public int Core { get; }

    public IActorRef Supervisor { get; internal set; }

    /// <summary>The OS thread (tid) of the core dispatcher the circuit runs on, once started.</summary>
    public int ThreadId { get; internal set; }

    /// <summary>When the client's connection was accepted (on the node that accepted it, for a circuit handed over since).</summary>
    public DateTimeOffset OpenedAt
    {
        get => new(_openedAtTicks, TimeSpan.Zero);
        init => _openedAtTicks = value.UtcTicks;
    }

    /// <summary>How many times the circuit was handed over from one node to another.</summary>
    public int Moves
    {
        get => _moves?.Count ?? 0;
        init => _moves = new MoveHistory(value, _moves?.At);
    }

    /// <summary>When the circuit last arrived on this node in a handover; null if it opened here.</summary>
    public DateTimeOffset? MovedAt
    {
        get => _moves?.At;
        init => _moves = new MoveHistory(_moves?.Count ?? 0, value);
    }

    /// <summary>The circuit's byte counters and activity clock: the entry itself (see <see cref="CircuitCounters"/>).</summary>
    public CircuitCounters Counters => this;

    /// <summary>
    /// What the circuit holds of its route's and the node's admission limits, given back by the
    /// acceptor's close hook (one hook for all its circuits, rather than one closure each).
    /// </summary>
    internal AdmissionTicket? Ticket { get; init; }

    public CircuitState State
    {
        get => (CircuitState)Volatile.Read(ref _state);
        internal set => Volatile.Write(ref _state, (int)value);
    }

    /// <summary>
    /// The accepted client socket, for read-only use from outside (getsockopt, TCP_INFO): a
    /// new Socket over the circuit's descriptor at each read (the circuit keeps the handle
    /// alone, see CircuitSockets.View). Its calls throw <see cref="ObjectDisposedException"/>
    /// once the circuit has closed it; never dispose it.
    /// </summary>
    public Socket? ClientSocket => ClientHandle is { } handle ? CircuitSockets.View(handle) : null;

    /// <summary>The upstream socket once it exists, as <see cref="ClientSocket"/>.</summary>
    public Socket? UpstreamSocket => UpstreamHandle is { } handle ? CircuitSockets.View(handle) : null;

    /// <summary>The client socket's handle: the descriptor the circuit owns.</summary>
    internal SafeSocketHandle? ClientHandle { get; set; }

    /// <summary>The upstream socket's handle once it exists.</summary>
    internal SafeSocketHandle? UpstreamHandle { get; set; }

    private sealed record MoveHistory(int Count, DateTimeOffset? At);

    /// <summary>Wall-clock time of the last byte moved, derived from the monotonic activity clock.</summary>
    public DateTimeOffset LastActivity =>
        DateTimeOffset.UtcNow - TimeSpan.FromMilliseconds(Environment.TickCount64 - Counters.LastActivityMs);
}

/// <summary>
/// The table of live circuits on this node. Lock-free reads for management and metrics;
/// an entry is added when a client is accepted and removed when its circuit has closed.
/// </summary>
public sealed class CircuitRegistry
{
    private readonly ConcurrentDictionary<long, CircuitEntry> _circuits = new();
    private long _nextId;

    public int Count => _circuits.Count;

    /// <summary>Circuit ids are unique per node and never reused while the process lives.</summary>
    /// <summary>
    /// A new circuit's id: the next number not held by a live circuit. A circuit handed over
    /// from another node keeps the id it had there, which this node's own count may reach
    /// while that circuit still runs here.
    /// </summary>
    public long NextId()
    {
        while (true)
        {
            var id = Interlocked.Increment(ref _nextId);
            if (!_circuits.ContainsKey(id))
            {
                return id;
            }
        }
    }

    public void Add(CircuitEntry entry) => _circuits[entry.Id] = entry;

    /// <summary>Whether <paramref name="id"/> is held by a live circuit of this node.</summary>
    public bool Contains(long id) => _circuits.ContainsKey(id);

    public void Remove(long id) => _circuits.TryRemove(id, out _);

    public bool TryGet(long id, out CircuitEntry entry) => _circuits.TryGetValue(id, out entry!);

    /// <summary>A point-in-time copy, safe to enumerate while circuits come and go.</summary>
    public IReadOnlyList<CircuitEntry> Snapshot() => _circuits.Values.ToArray();
}
