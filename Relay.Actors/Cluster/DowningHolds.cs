using System.Collections.Concurrent;
using Akka.Actor;
using Relay.Actors.Internal;

namespace Relay.Actors.Cluster;

/// <summary>
/// Which members this node must not down for now, and until when at most: the two ends of a
/// live handover. While a handover holds circuits frozen, both ends are as busy as they ever
/// get (every circuit's queues dumped, shipped over the state channel and restored, hundreds
/// of megabytes with autotuned buffers), and a failure detector tuned for a LAN pair (600 ms
/// of missed heartbeats) can call either of them unreachable. Downing one then is the worst
/// outcome there is: the survivor takes the service and both addresses while the other rolls
/// back and takes them too, and every circuit is reset. The handover has its own bounds (each
/// step of the state channel, <c>relay.cluster.handover.timeout</c>) and ends by itself when
/// its peer is really gone; its hold ends with it, and the downing decision comes then.
/// <para>
/// Read by <see cref="ReachableSideDowning"/>; filled by the handover's two ends directly and,
/// on the other members, by <see cref="DowningHoldsActor"/> from the source's notice, so that
/// a third node does not down either end either.
/// </para>
/// </summary>
public sealed class DowningHolds : IExtension
{
    private readonly ConcurrentDictionary<string, Hold> _holds = new();

    /// <summary>This node's holds (one instance per actor system).</summary>
    public static DowningHolds Get(ActorSystem system) => system.WithExtension<DowningHolds, DowningHoldsProvider>();

    /// <summary>
    /// Holds the downing of <paramref name="members"/> under <paramref name="id"/> until the
    /// returned lease is disposed, or <paramref name="atMost"/> has passed (a safety bound
    /// for a handover that never ends its hold). Holding the same id again replaces it.
    /// <paramref name="released"/>, when given, runs once as the lease is disposed (the
    /// source's release notice to the other members).
    /// </summary>
    public IDisposable Add(string id, IReadOnlyCollection<Address> members, string reason, TimeSpan atMost, Action? released = null)
    {
        _holds[id] = new Hold(members.ToArray(), reason, Environment.TickCount64 + (long)atMost.TotalMilliseconds);
        return new Lease(this, id, released);
    }

    /// <summary>Ends the hold <paramref name="id"/>, if it is still there.</summary>
    public void Remove(string id) => _holds.TryRemove(id, out _);

    /// <summary>
    /// Why <paramref name="member"/> must not be downed now (the first live hold that names
    /// it), or null. Expired holds are dropped as they are met.
    /// </summary>
    public string? WhyHeld(Address member)
    {
        var now = Environment.TickCount64;
        foreach (var (id, hold) in _holds)
        {
            if (now >= hold.UntilMs)
            {
                _holds.TryRemove(id, out _);
                continue;
            }

            if (hold.Members.Contains(member))
            {
                return hold.Reason;
            }
        }

        return null;
    }

    private sealed record Hold(Address[] Members, string Reason, long UntilMs);

    private sealed class Lease(DowningHolds holds, string id, Action? released) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                holds.Remove(id);
                released?.Invoke();
            }
        }
    }
}

/// <summary>INTERNAL API. Akka's extension id for <see cref="DowningHolds"/>.</summary>
public sealed class DowningHoldsProvider : ExtensionIdProvider<DowningHolds>
{
    public override DowningHolds CreateExtension(ExtendedActorSystem system) => new();
}

/// <summary>
/// <c>/user/downing-holds</c> on every clustered node: takes a handover source's notice that
/// two members are handing circuits over (<see cref="HoldDowning"/>) into this node's
/// <see cref="DowningHolds"/>, and its end (<see cref="ReleaseDowning"/>).
/// </summary>
public sealed class DowningHoldsActor : ReceiveActor
{
    public const string Name = "downing-holds";

    /// <summary>Do not down <paramref name="Members"/> (actor system addresses) for at most <paramref name="AtMostMs"/>.</summary>
    public sealed record HoldDowning(string Id, string[] Members, string Reason, long AtMostMs);

    /// <summary>The handover <paramref name="Id"/> ended: its members may be downed again.</summary>
    public sealed record ReleaseDowning(string Id);

    public DowningHoldsActor()
    {
        var holds = DowningHolds.Get(Context.System);
        Receive<HoldDowning>(hold => holds.Add(hold.Id, hold.Members.Select(Address.Parse).ToArray(), hold.Reason,
            TimeSpan.FromMilliseconds(Math.Clamp(hold.AtMostMs, 0, (long)MaxHold.TotalMilliseconds))));
        Receive<ReleaseDowning>(release => holds.Remove(release.Id));
    }

    /// <summary>The longest hold another node may ask for: a notice can never stop downing for good.</summary>
    public static readonly TimeSpan MaxHold = TimeSpan.FromMinutes(5);

    public static Props Props() => PropsFactory.Of(() => new DowningHoldsActor());
}
