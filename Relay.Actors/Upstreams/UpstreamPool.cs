using System.Net;
using Akka.Event;
using Relay.Actors.Configuration;
using Relay.Actors.Logging;

namespace Relay.Actors.Upstreams;

/// <summary>
/// The live state of one route's upstream pool, shared by the route's circuits on every core
/// thread. The connect path is lock-free: <see cref="Pick"/> reads each member's state with
/// volatile reads and one interlocked increment, and a success on a healthy member is a single
/// read. Only state changes (a member going down or coming back, rare by nature) take the
/// member's lock, so each change is logged exactly once.
/// <para>
/// When every member a circuit has not yet tried is down, the circuit tries them anyway (in
/// balance order) rather than resetting the client: the pool's view of "down" is a guess made
/// from past failures or a check seconds old, and a guess must not turn a blip into an outage.
/// This is Envoy's "panic" routing and what HAProxy does with <c>option redispatch</c> and no
/// backup server. A down member is only skipped while some other member is up.
/// </para>
/// </summary>
public sealed class UpstreamPool
{
    private readonly UpstreamMember[] _members;
    private readonly Func<long> _nowMs;
    private readonly ILoggingAdapter? _log;
    private int _cursor = -1;

    /// <param name="route">The route's name, for log events.</param>
    /// <param name="settings">The members and their health rules.</param>
    /// <param name="log">Where <c>UpstreamDown</c>/<c>UpstreamUp</c> go (thread-safe); null logs nothing.</param>
    /// <param name="nowMs">A monotonic millisecond clock; <see cref="Environment.TickCount64"/> unless a test injects one.</param>
    public UpstreamPool(string route, UpstreamPoolSettings settings, ILoggingAdapter? log = null, Func<long>? nowMs = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.Members.Count is 0 or > UpstreamPoolSettings.MaxMembers)
        {
            throw new ArgumentException($"a pool has 1 to {UpstreamPoolSettings.MaxMembers} members", nameof(settings));
        }

        Route = route;
        Settings = settings;
        _log = log;
        _nowMs = nowMs ?? (() => Environment.TickCount64);
        _members = settings.Members.Select((address, i) => new UpstreamMember(i, address)).ToArray();
    }

    public string Route { get; }

    public UpstreamPoolSettings Settings { get; }

    public IReadOnlyList<UpstreamMember> Members => _members;

    /// <summary>
    /// Chooses the member a circuit connects to next, skipping the members in
    /// <paramref name="tried"/> (bit i = member i). Returns the member's index, or -1 when
    /// every member has been tried. The member's circuit count is raised: call
    /// <see cref="Release"/> once the attempt fails or the circuit ends.
    /// </summary>
    public int Pick(ulong tried)
    {
        var now = _nowMs();
        var chosen = Settings.Balance == BalanceMode.LeastCircuits ? PickLeast(tried, now, healthyOnly: true) : PickNext(tried, now, healthyOnly: true);
        if (chosen < 0)
        {
            // Every untried member is down: try them anyway (see the class comment).
            chosen = Settings.Balance == BalanceMode.LeastCircuits ? PickLeast(tried, now, healthyOnly: false) : PickNext(tried, now, healthyOnly: false);
        }

        if (chosen >= 0)
        {
            Interlocked.Increment(ref _members[chosen].ActiveCount);
        }

        return chosen;
    }

    private int PickNext(ulong tried, long now, bool healthyOnly)
    {
        var n = _members.Length;
        var start = (int)((uint)Interlocked.Increment(ref _cursor) % (uint)n);
        for (var k = 0; k < n; k++)
        {
            var i = (start + k) % n;
            if ((tried & (1UL << i)) == 0 && (!healthyOnly || TryUse(_members[i], now)))
            {
                return i;
            }
        }

        return -1;
    }

    private int PickLeast(ulong tried, long now, bool healthyOnly)
    {
        var n = _members.Length;
        // Start the scan at a rotating member, so equal loads are spread round-robin.
        var start = (int)((uint)Interlocked.Increment(ref _cursor) % (uint)n);
        var best = -1;
        var bestActive = int.MaxValue;
        for (var k = 0; k < n; k++)
        {
            var i = (start + k) % n;
            var member = _members[i];
            if ((tried & (1UL << i)) != 0)
            {
                continue;
            }

            if (healthyOnly)
            {
                if (member.IsEjected && !member.IsActiveDown)
                {
                    // A back-off that has run out earns one trial circuit, ahead of the load order.
                    if (TryClaimTrial(member, now))
                    {
                        return i;
                    }

                    continue;
                }

                if (!member.IsUp)
                {
                    continue;
                }
            }

            var active = Volatile.Read(ref member.ActiveCount);
            if (active < bestActive)
            {
                best = i;
                bestActive = active;
            }
        }

        return best;
    }

    /// <summary>Up, or ejected with its back-off run out and this caller the one to try it.</summary>
    private bool TryUse(UpstreamMember member, long now) =>
        member.IsUp || (member.IsEjected && !member.IsActiveDown && TryClaimTrial(member, now));

    /// <summary>
    /// One circuit per back-off period may try an ejected member: the first to see the back-off
    /// expired moves the deadline on by the next (doubled) back-off with a compare-and-swap, so
    /// the others keep skipping it. A success ends the ejection (<see cref="OnConnected"/>);
    /// a failure leaves the longer back-off in place.
    /// </summary>
    private bool TryClaimTrial(UpstreamMember member, long now)
    {
        var until = Volatile.Read(ref member.EjectedUntilMs);
        if (until == 0 || now < until)
        {
            return false;
        }

        var ejections = Volatile.Read(ref member.Ejections) + 1;
        if (Interlocked.CompareExchange(ref member.EjectedUntilMs, now + (long)Backoff(ejections).TotalMilliseconds, until) != until)
        {
            return false; // another circuit claimed this trial
        }

        Volatile.Write(ref member.Ejections, ejections);
        return true;
    }

    /// <summary>The back-off after <paramref name="ejections"/> ejections in a row: doubled each time, capped.</summary>
    public TimeSpan Backoff(int ejections)
    {
        var passive = Settings.Passive;
        var factor = Math.Pow(2, Math.Min(Math.Max(ejections - 1, 0), 30));
        var ms = Math.Min(passive.Backoff.TotalMilliseconds * factor, passive.MaxBackoff.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(Math.Max(ms, passive.Backoff.TotalMilliseconds));
    }

    /// <summary>The circuit that picked <paramref name="member"/> is done with it (its connect failed, or it ended).</summary>
    public void Release(int member) => Interlocked.Decrement(ref _members[member].ActiveCount);

    /// <summary>A connect to <paramref name="member"/> succeeded: its failure count and any ejection end.</summary>
    public void OnConnected(int member)
    {
        var m = _members[member];
        if (Volatile.Read(ref m.ConsecutiveFailures) == 0 && Volatile.Read(ref m.EjectedUntilMs) == 0)
        {
            return; // the common case: a healthy member stays healthy, without a lock
        }

        lock (m)
        {
            var wasUp = m.IsUp;
            Volatile.Write(ref m.ConsecutiveFailures, 0);
            Volatile.Write(ref m.Ejections, 0);
            Volatile.Write(ref m.EjectedUntilMs, 0);
            LogIfChanged(m, wasUp, "a circuit connected");
        }
    }

    /// <summary>
    /// A connect to <paramref name="member"/> failed with <paramref name="reason"/> (a close
    /// reason such as <c>upstream-refused</c>). The <see cref="PassiveHealthSettings.Fall"/>th
    /// failure in a row ejects the member.
    /// </summary>
    public void OnConnectFailed(int member, string reason)
    {
        var m = _members[member];
        Interlocked.Increment(ref m.ConnectFailureCount);
        lock (m)
        {
            var failures = ++m.ConsecutiveFailures;
            if (failures < Settings.Passive.Fall || m.EjectedUntilMs != 0)
            {
                return; // not yet at the limit, or already ejected (a failed trial keeps its longer back-off)
            }

            var wasUp = m.IsUp;
            var backoff = Backoff(1);
            m.Ejections = 1;
            Volatile.Write(ref m.EjectedUntilMs, _nowMs() + (long)backoff.TotalMilliseconds);
            m.LastProblem = $"{failures} connect failures in a row (last: {reason}); ejected for {ConfigReader.FormatDuration(backoff)}";
            LogIfChanged(m, wasUp, m.LastProblem);
        }
    }

    /// <summary>The active health check's verdict on <paramref name="member"/> changed.</summary>
    public void OnHealthCheck(int member, bool up, string detail)
    {
        var m = _members[member];
        lock (m)
        {
            var wasUp = m.IsUp;
            m.IsActiveDown = !up;
            if (up)
            {
                // A check that connects proves the member reachable: it ends a passive ejection too.
                m.ConsecutiveFailures = 0;
                m.Ejections = 0;
                Volatile.Write(ref m.EjectedUntilMs, 0);
            }
            else
            {
                m.LastProblem = detail;
            }

            LogIfChanged(m, wasUp, detail);
        }
    }

    private void LogIfChanged(UpstreamMember m, bool wasUp, string reason)
    {
        var isUp = m.IsUp;
        if (isUp == wasUp)
        {
            return;
        }

        Volatile.Write(ref m.ChangedAtTicks, DateTimeOffset.UtcNow.UtcTicks);
        if (_log is null)
        {
            return;
        }

        if (isUp)
        {
            RelayEvents.UpstreamUp.Log(_log, Route, m.Address.ToString(), reason);
        }
        else
        {
            RelayEvents.UpstreamDown.Log(_log, Route, m.Address.ToString(), reason);
        }
    }
}

/// <summary>
/// One member of an <see cref="UpstreamPool"/>. The fields are the pool's, updated with
/// interlocked or volatile operations; outside readers (management, metrics) use the properties.
/// </summary>
public sealed class UpstreamMember
{
    internal int ActiveCount;
    internal long ConnectFailureCount;
    internal int ConsecutiveFailures;
    internal int Ejections;
    internal long EjectedUntilMs; // 0 when not ejected
    internal long ChangedAtTicks;
    private volatile bool _activeDown;
    private volatile string? _lastProblem;

    internal UpstreamMember(int index, UpstreamAddress address)
    {
        Index = index;
        Address = address;
        Literal = IPAddress.TryParse(address.Host, out var ip) ? new IPEndPoint(ip, address.Port) : null;
    }

    public int Index { get; }

    public UpstreamAddress Address { get; }

    /// <summary>
    /// The member's endpoint when its host is an IP address, parsed once and shared by every
    /// circuit connecting to it (nothing changes an endpoint it is given); null for a name,
    /// which each circuit resolves.
    /// </summary>
    internal IPEndPoint? Literal { get; }

    /// <summary>Neither ejected by connect failures nor marked down by the health check.</summary>
    public bool IsUp => Volatile.Read(ref EjectedUntilMs) == 0 && !_activeDown;

    /// <summary>Ejected after connect failures (its back-off may have run out, awaiting a trial).</summary>
    public bool IsEjected => Volatile.Read(ref EjectedUntilMs) != 0;

    /// <summary>The active health check says down.</summary>
    public bool IsActiveDown
    {
        get => _activeDown;
        internal set => _activeDown = value;
    }

    /// <summary>Circuits open or connecting to this member now.</summary>
    public int Active => Volatile.Read(ref ActiveCount);

    /// <summary>Connect attempts that failed, since the pool was made.</summary>
    public long ConnectFailures => Volatile.Read(ref ConnectFailureCount);

    /// <summary>Why the member last went down (null if it never did).</summary>
    public string? LastProblem
    {
        get => _lastProblem;
        internal set => _lastProblem = value;
    }

    /// <summary>When the member last changed state (null if it never did).</summary>
    public DateTimeOffset? ChangedAt => Volatile.Read(ref ChangedAtTicks) is var t && t == 0 ? null : new DateTimeOffset(t, TimeSpan.Zero);
}
