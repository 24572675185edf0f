using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Relay.Actors.Circuits;
using Relay.Actors.Cluster;
using Relay.Actors.Internal;
using Relay.Actors.Listening;
using Relay.Actors.Logging;
using Relay.Actors.Metrics;
using Relay.Actors.Configuration;
using Relay.Actors.Native;

namespace Relay.Actors.Handover;

/// <summary>
/// <c>/user/handover</c> on every clustered node: moves the established circuits, with the
/// service and egress addresses, from this node to a standby (<see cref="HandoverProtocol.Start"/>),
/// and takes them when another node hands them here (<see cref="HandoverProtocol.Prepare"/>).
/// <para>
/// The source: ask the target for a state channel; stop accepting; freeze every circuit's
/// pumps; drop the circuits' 4-tuples both ways (<see cref="TupleGuard"/>, one batch); put
/// every socket in repair mode and dump it (<see cref="TcpRepair"/>); remove the addresses;
/// send the images. The target (its routes bound already, on the VIP it does not hold yet):
/// drop the same tuples, add the addresses, restore every socket (guarded, in repair mode),
/// and say which it holds. The source then sends Commit: from that moment the circuits are the
/// target's, and the source closes its sockets silently. The target lifts its guard, takes
/// each socket out of repair mode with a window probe and adopts each circuit into its route. Without the target's answer in time, the source takes the
/// addresses back, lifts its guard, leaves repair mode and thaws every circuit: a circuit runs
/// on exactly one node at any moment, and a failed handover loses none.
/// </para>
/// <para>
/// The guard stays on the source for <c>guard-timeout</c> after a handover: a late segment for
/// a moved tuple would otherwise meet this node's stack, which knows no such connection, and
/// draw a reset. It is lifted sooner when the service comes back here, by a handover or by a
/// take-over (<see cref="ServiceOwnerActor.ServiceAcquired"/>).
/// </para>
/// </summary>
public sealed class HandoverCoordinator : ReceiveActor
{
    private static readonly TimeSpan FreezeTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Queued bytes per state channel frame, so that the target restores one batch while the
    /// next is on the wire; a single circuit holding more goes alone (a frame holds up to
    /// <see cref="StateChannel.DefaultMaxFrameSize"/>).
    /// </summary>
    private const long BatchBytes = 16 * 1024 * 1024;

    /// <summary>An image's bytes besides its queues (endpoints, sequences, windows, counters, route name), rounded up.</summary>
    private const long ImageOverhead = 512;

    /// <summary>How long past the handover timeout a node's held addresses stay held if it never releases them.</summary>
    private static readonly TimeSpan HoldMargin = TimeSpan.FromSeconds(10);

    private readonly ClusterNode _cluster;
    private readonly IActorRef _guardian;
    private readonly RelayNodeContext _node;
    private readonly HandoverMetrics _metrics;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private TupleGuard? _guard;
    // The tuples of circuits this node handed away, guarded here for guard-timeout; lifted when
    // the service comes back, since a new upstream connection may then take one of their ports.
    private readonly List<TcpTuple> _handedAway = [];
    private string? _unavailable;

    public HandoverCoordinator(ClusterNode cluster, IActorRef guardian, RelayNodeContext node, HandoverMetrics metrics)
    {
        _cluster = cluster;
        _guardian = guardian;
        _node = node;
        _metrics = metrics;
        ReceiveAsync<HandoverProtocol.Start>(start => HandOverAsync(start));
        ReceiveAsync<HandoverProtocol.Prepare>(prepare => TakeOverAsync(prepare));
        // The service came back by a take-over, the member this node handed circuits to being
        // gone: those circuits died with it, and their peers, now sent here, must meet this
        // node's stack (a reset at once) rather than the guard (silence until their own
        // timeouts), as must a new connection that happens to reuse one of their tuples.
        Receive<ServiceOwnerActor.ServiceAcquired>(_ => ForgetHandedAway());
        Receive<Rehearsed>(rehearsed =>
        {
            if (rehearsed.Problem is { } problem)
            {
                RelayEvents.HandoverRehearsalFailed.Log(_log, problem);
            }
            else
            {
                RelayEvents.HandoverRehearsed.Log(_log, rehearsed.ElapsedMs);
            }
        });
    }

    public static Props Props(ClusterNode cluster, IActorRef guardian, RelayNodeContext node, HandoverMetrics metrics) =>
        PropsFactory.Of(() => new HandoverCoordinator(cluster, guardian, node, metrics));

    private HandoverSettings Settings => _cluster.Settings.Handover;

    protected override void PreStart()
    {
        Context.System.EventStream.Subscribe(Self, typeof(ServiceOwnerActor.ServiceAcquired));
        // Opened at start, as the VIP sockets are: a missing capability shows now, not at the
        // first handover, and the node still serves without it.
        try
        {
            _guard = TupleGuard.Open();
        }
        catch (TupleGuardException e)
        {
            _unavailable = e.Message;
            RelayEvents.HandoverUnavailable.Log(_log, e.Message);
            return;
        }

        Rehearse();
    }

    /// <summary>
    /// The first handover's code paths, run once now rather than inside its pause: an element
    /// added to the guard's table and removed (a tuple of 127.0.0.1 ports no connection uses),
    /// and one loopback connection handed over within this process (<see cref="HandoverRehearsal"/>).
    /// </summary>
    private void Rehearse()
    {
        try
        {
            TcpTuple[] unused = [new(new IPEndPoint(IPAddress.Loopback, 1), new IPEndPoint(IPAddress.Loopback, 1))];
            _guard!.Add(unused, TimeSpan.FromSeconds(1));
            _guard.Remove(unused);
        }
        catch (TupleGuardException e)
        {
            RelayEvents.HandoverRehearsalFailed.Log(_log, $"the guard: {e.Message}");
            return;
        }

        HandoverRehearsal.RunAsync().ContinueWith(
            t => t.IsCompletedSuccessfully ? new Rehearsed(t.Result.TotalMilliseconds, null) : new Rehearsed(0, t.Exception!.GetBaseException().Message),
            TaskScheduler.Default).PipeTo(Self);
    }

    private sealed record Rehearsed(double ElapsedMs, string? Problem);

    protected override void PostStop()
    {
        Context.System.EventStream.Unsubscribe(Self);
        // The table stays in the kernel (its elements expire on their own): a moved tuple must
        // stay dropped on this node for a while even if the process exits right after.
        _guard?.CloseKeepingTable();
    }

    // ---------------------------------------------------------------- the source

    private async Task HandOverAsync(HandoverProtocol.Start start)
    {
        var replyTo = Sender;
        HandoverProtocol.Outcome outcome;
        try
        {
            outcome = await RunSourceAsync(start);
        }
        catch (Exception e)
        {
            // A bug, or the node stopping under the handover: say so rather than hang the caller.
            outcome = Fail(start.Target, $"{e.GetType().Name}: {e.Message}");
        }

        _metrics.OnHandover(outcome);
        replyTo.Tell(outcome);
    }

    private HandoverProtocol.Outcome Fail(string? target, string why)
    {
        RelayEvents.HandoverFailed.Log(_log, target ?? "(none)", why);
        return new HandoverProtocol.Outcome(HandoverProtocol.Results.Failed, why, target, 0, _node.Registry.Count, 0, 0, 0);
    }

    private async Task<HandoverProtocol.Outcome> RunSourceAsync(HandoverProtocol.Start start)
    {
        if (_unavailable is not null)
        {
            return Fail(start.Target, $"handover is unavailable on this node: {_unavailable}");
        }

        if (_cluster.Settings.EgressVip is null)
        {
            // The server's side of each circuit is bound to this node's own address: it
            // cannot move, and a circuit half moved is a circuit lost.
            return Fail(start.Target, "handover needs relay.cluster.egress-vip (upstream connections bound to a floating address)");
        }

        if (!_cluster.Service.IsOwner)
        {
            return Fail(start.Target, "this node does not own the service: only the owner hands over");
        }

        var target = PickTarget(start.Target, out var problem);
        if (target is null)
        {
            return Fail(start.Target, problem!);
        }

        var targetName = target.Address.ToString();
        var id = Guid.NewGuid().ToString("N")[..12];
        var selfIp = await HostAddressAsync(_cluster.Cluster.SelfAddress);
        RelayEvents.HandoverStarted.Log(_log, id, targetName, start.Trigger, _node.Registry.Count);
        // Before the target hears of it: from here until the outcome neither end is downed, by
        // any member (DowningHolds).
        using var downingHold = HoldDowning(id, _cluster.Cluster.SelfAddress, target.Address, tellOthers: true);

        var coordinator = Context.ActorSelection(new RootActorPath(target.Address) / "user" / "handover");
        object answer;
        try
        {
            answer = await coordinator.Ask<object>(new HandoverProtocol.Prepare(id, selfIp.ToString(), Settings.Waves), AskTimeout);
        }
        catch (Exception e) when (e is AskTimeoutException or TaskCanceledException)
        {
            return Fail(targetName, $"{targetName} did not answer within {AskTimeout.TotalSeconds:0} s");
        }

        if (answer is HandoverProtocol.Refused refused)
        {
            return Fail(targetName, $"{targetName} refused: {refused.Reason}");
        }

        var offer = (HandoverProtocol.Offer)answer;
        // The state channel is connected before anything is frozen: a target whose offer this
        // node cannot reach (a firewall between the members' ephemeral ports, say) fails the
        // handover here, with every circuit still running, instead of after the freeze, with
        // every circuit stood still until the ship timeout and a rollback.
        StateChannel channel;
        var targetIp = await HostAddressAsync(target.Address);
        using (var connecting = new CancellationTokenSource(Settings.Timeout))
        {
            try
            {
                channel = await StateChannel.ConnectAsync(new IPEndPoint(targetIp, offer.Port), offer.Token, selfIp, cancellationToken: connecting.Token);
            }
            catch (Exception e) when (e is StateChannelException or SocketException or OperationCanceledException)
            {
                var why = e is OperationCanceledException ? $"no connection within {Settings.Timeout.TotalSeconds:0.###} s" : e.Message;
                return Fail(targetName, $"cannot reach {targetName}'s state channel at {targetIp}:{offer.Port} (nothing was frozen): {why}");
            }
        }

        using var _ = channel;
        // Nothing new from here: new clients wait for the target. Their SYNs are dropped, not
        // refused by the closed listeners, so each is sent again a second later, to whichever
        // node holds the address by then.
        HoldNewConnections();
        try
        {
            return await MoveCircuitsAsync(id, targetName, target.Address, channel, offer);
        }
        finally
        {
            // Committed (the addresses are gone from here) or rolled back (the routes listen again).
            ReleaseNewConnections();
        }
    }

    private async Task<HandoverProtocol.Outcome> MoveCircuitsAsync(string id, string targetName, Address target, StateChannel channel,
        HandoverProtocol.Offer offer)
    {
        await _guardian.Ask<object>(RelayGuardian.StopServing.Instance, AskTimeout);
        var clock = Stopwatch.StartNew();
        var frozen = await FreezeAllAsync();
        var freezeMs = clock.Elapsed.TotalMilliseconds;
        var stayed = _node.Registry.Count - frozen.Count;
        // The busiest circuits first: the target restores, unguards and adopts in this order,
        // so a streaming circuit runs again before the idle ones are adopted. In two waves
        // (a target that takes them), the quiet ones are dumped and shipped after the commit.
        frozen.Sort((a, b) => a.QuietMs.CompareTo(b.QuietMs));
        var twoWaves = offer.Waves >= HandoverProtocol.TwoWaves && Settings.Waves >= HandoverProtocol.TwoWaves;
        var busyCount = twoWaves ? frozen.Count(f => f.QuietMs < CircuitReceiver.BusyWithinMs) : frozen.Count;
        var secondWave = new SecondWave(twoWaves, frozen.GetRange(busyCount, frozen.Count - busyCount), clock);
        List<CircuitImage> images;
        List<CircuitHandoverProtocol.Frozen> moving, failedDumps;
        try
        {
            _guard!.Add(TuplesOf(frozen), Settings.GuardTimeout);
            (images, moving, failedDumps) = Dump(frozen.GetRange(0, busyCount));
        }
        catch (Exception e) when (e is TupleGuardException or TcpRepairException or SocketException or ObjectDisposedException)
        {
            // The guard refused (say): nothing has left this node, so everything goes on here.
            await RollBackAsync(frozen);
            return Fail(targetName, $"the circuits could not be prepared for the move: {e.Message}");
        }

        var bytesMoved = images.Sum(QueuedBytes);

        _cluster.FloatingAddresses?.Remove();
        var dumpMs = clock.Elapsed.TotalMilliseconds - freezeMs;
        var (restored, shipProblem) = await ShipAsync(id, channel, images, secondWave);
        var shipMs = (restored is null ? clock.Elapsed.TotalMilliseconds : secondWave.CommittedAtMs) - freezeMs - dumpMs;
        var phases = new HandoverProtocol.Phases(freezeMs, dumpMs, shipMs);
        if (restored is null)
        {
            // Not committed: the second wave is frozen here still, and goes on here too.
            var detail = shipProblem!;
            moving.AddRange(secondWave.Circuits);
            await RollBackAsync(moving);
            RelayEvents.HandoverRolledBack.Log(_log, id, targetName, detail, moving.Count);
            return new HandoverProtocol.Outcome(HandoverProtocol.Results.RolledBack, detail, targetName, 0, _node.Registry.Count, 0, 0,
                clock.Elapsed.TotalMilliseconds) { Timings = phases };
        }

        // Committed: the circuits are the target's now; this node only lets go of them. Those of
        // the second wave that were not dumped (the channel failed first) go too: the commit
        // covered them, and the addresses are gone.
        var pauseMs = clock.Elapsed.TotalMilliseconds;
        moving.AddRange(secondWave.Circuits.Except(secondWave.Failed));
        failedDumps.AddRange(secondWave.Failed);
        bytesMoved += secondWave.BytesMoved;
        _cluster.Service.Released();
        TellOwnerSingleton(target);
        _handedAway.AddRange(TuplesOf(moving)); // before the release closes the sockets
        var (moved, lost) = await ReleaseAsync(moving, restored);
        _metrics.OnCircuitsHandedOver(moved, pauseMs / 1000);
        // The other nodes' tables drop the moved circuits from this node's list now, not at the
        // next tick: a node that leaves right after (a rolling restart) would otherwise leave
        // them listed as its own, and lost.
        _cluster.StateActor.Tell(CircuitStateActor.PublishNow.Instance);
        var busyPauseMs = secondWave.CommittedAtMs;
        var waves = twoWaves ? HandoverProtocol.TwoWaves : 1;
        RelayEvents.HandoverCompleted.Log(_log, id, targetName, moved, stayed + failedDumps.Count, lost, bytesMoved, waves, busyPauseMs, pauseMs);
        return new HandoverProtocol.Outcome(HandoverProtocol.Results.Completed, $"{moved} circuit(s) moved to {targetName}", targetName,
            moved, stayed + failedDumps.Count, lost, bytesMoved, pauseMs) { Timings = phases, BusyPauseMs = busyPauseMs, Waves = waves };
    }

    /// <summary>
    /// The quiet circuits of a two-wave handover (none in one wave): frozen and guarded with
    /// the rest, dumped only after the commit. The source fills in what happened to them.
    /// </summary>
    private sealed class SecondWave(bool expected, List<CircuitHandoverProtocol.Frozen> circuits, Stopwatch sinceFreeze)
    {
        /// <summary>Whether the target waits for a second wave (it does in a two-wave handover, even an empty one).</summary>
        public bool Expected { get; } = expected;

        public List<CircuitHandoverProtocol.Frozen> Circuits { get; } = circuits;

        /// <summary>Those whose dump failed: thawed here, like a failed dump of the first wave.</summary>
        public List<CircuitHandoverProtocol.Frozen> Failed { get; } = [];

        public long BytesMoved { get; set; }

        /// <summary>Milliseconds from the freeze to the commit: how long the busy circuits stood still (before their adoption).</summary>
        public double CommittedAtMs { get; private set; }

        public void Committed() => CommittedAtMs = sinceFreeze.Elapsed.TotalMilliseconds;
    }

    /// <summary>The service addresses, whose new connections are held while they move.</summary>
    private IPAddress[] ServiceAddresses =>
        _cluster.FloatingAddresses?.Addresses.Where(a => a.Kind == FloatingAddressKind.Service).Select(a => a.Address.Address).ToArray() ?? [];

    private void HoldNewConnections()
    {
        // A bound past the longest handover, so a node that dies holding them does not hold long.
        _guard!.HoldNewConnections(ServiceAddresses, Settings.Timeout + HoldMargin);
    }

    private void ReleaseNewConnections()
    {
        try
        {
            _guard!.ReleaseNewConnections(ServiceAddresses);
        }
        catch (TupleGuardException e)
        {
            // They expire by themselves within the hold's bound; a new connection meanwhile waits for its SYN's retry.
            RelayEvents.HandoverChannelFailed.Log(_log, "release new connections", e.Message);
        }
    }

    /// <summary>
    /// The longest a handover holds the downing of its two ends, should it never end its hold:
    /// far past any handover whose steps each finish within the timeout.
    /// </summary>
    private TimeSpan DowningHoldBound => TimeSpan.FromTicks(Math.Max(TimeSpan.FromSeconds(30).Ticks, Settings.Timeout.Ticks * 12));

    /// <summary>
    /// No member downs <paramref name="source"/> or <paramref name="target"/> until the
    /// returned hold is disposed (<see cref="DowningHolds"/>): this node at once, and with
    /// <paramref name="tellOthers"/> every other member too, by a notice to its
    /// <see cref="DowningHoldsActor"/> (and a release at the end).
    /// </summary>
    private IDisposable HoldDowning(string id, Address source, Address target, bool tellOthers)
    {
        var bound = DowningHoldBound;
        var why = $"it is one end of handover {id.Split('/')[0]} ({source} to {target})";
        var holds = DowningHolds.Get(Context.System);
        if (!tellOthers)
        {
            return holds.Add(id, [source, target], why, bound);
        }

        var self = _cluster.Cluster.SelfAddress;
        var others = _cluster.Cluster.State.Members
            .Where(m => m.Status != MemberStatus.Down && m.Status != MemberStatus.Removed && !m.Address.Equals(self))
            .Select(m => Context.ActorSelection(new RootActorPath(m.Address) / "user" / DowningHoldsActor.Name))
            .ToList();
        var notice = new DowningHoldsActor.HoldDowning(id, [source.ToString(), target.ToString()], why, (long)bound.TotalMilliseconds);
        foreach (var other in others)
        {
            other.Tell(notice);
        }

        return holds.Add(id, [source, target], why, bound, released: () =>
        {
            foreach (var other in others)
            {
                other.Tell(new DowningHoldsActor.ReleaseDowning(id));
            }
        });
    }

    private Member? PickTarget(string? wanted, out string? problem)
    {
        var self = _cluster.Cluster.SelfMember;
        var candidates = _cluster.Cluster.State.Members
            .Where(m => m.Status == MemberStatus.Up && !m.Address.Equals(self.Address))
            .OrderBy(m => m, Member.AgeOrdering)
            .ToList();
        problem = null;
        if (wanted is null)
        {
            if (candidates.Count == 0)
            {
                problem = "no other member is Up to take the circuits";
                return null;
            }

            // The oldest other member: the service's singleton lives on the oldest, and moves to
            // the next oldest when this node leaves, so the service goes where the singleton is
            // or will be.
            return candidates[0];
        }

        var match = candidates.FirstOrDefault(m => m.Address.ToString() == wanted || m.Address.Host == wanted);
        if (match is null)
        {
            problem = $"{wanted} is not an Up member other than this node (members: {string.Join(", ", candidates.Select(m => m.Address))})";
        }

        return match;
    }

    /// <summary>Freezes every circuit of the node at once; the frozen ones, in the order they answered.</summary>
    private async Task<List<CircuitHandoverProtocol.Frozen>> FreezeAllAsync()
    {
        var entries = _node.Registry.Snapshot();
        var asks = entries
            .Select(entry => entry.Supervisor.Ask<object>(replyTo => new CircuitHandoverProtocol.Freeze(replyTo, entry), FreezeTimeout, CancellationToken.None)
                .ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : null, TaskScheduler.Default))
            .ToList();
        var answers = await Task.WhenAll(asks);
        for (var i = 0; i < answers.Length; i++)
        {
            if (answers[i] is null)
            {
                // No answer in time: the circuit stays here, and it must not stay frozen should
                // its freeze still come (a busy core); a thaw before the freeze is a no-op.
                entries[i].Supervisor.Tell(new CircuitHandoverProtocol.Thaw(entries[i].Id));
            }
        }

        return answers.OfType<CircuitHandoverProtocol.Frozen>().ToList();
    }

    /// <summary>
    /// Dumps the frozen (and guarded) circuits' sockets. A circuit whose dump fails
    /// (its socket changed state, say) is not moved: it is taken out of repair mode, unguarded
    /// and thawed, and runs on here until the addresses go.
    /// </summary>
    private (List<CircuitImage> Images, List<CircuitHandoverProtocol.Frozen> Moving, List<CircuitHandoverProtocol.Frozen> Failed) Dump(
        List<CircuitHandoverProtocol.Frozen> frozen)
    {
        // The dumps are some twenty system calls per socket, each socket on its own: spread over
        // the cores (whose circuit threads are idle, every circuit being frozen), in order of
        // the circuits; what failed is dealt with afterwards, on this thread.
        var dumped = new CircuitImage?[frozen.Count];
        var problems = new string?[frozen.Count];
        Parallel.For(0, frozen.Count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            var circuit = frozen[i];
            try
            {
                TcpRepair.EnterRepair(circuit.Client);
                TcpRepair.EnterRepair(circuit.Upstream);
                dumped[i] = ImageOf(circuit, TcpRepair.Dump(circuit.Client), TcpRepair.Dump(circuit.Upstream));
            }
            catch (Exception e) when (e is TcpRepairException or SocketException or ObjectDisposedException)
            {
                problems[i] = e.Message;
            }
        });

        var images = new List<CircuitImage>(frozen.Count);
        var moving = new List<CircuitHandoverProtocol.Frozen>(frozen.Count);
        var failed = new List<CircuitHandoverProtocol.Frozen>();
        for (var i = 0; i < frozen.Count; i++)
        {
            var circuit = frozen[i];
            if (dumped[i] is { } image)
            {
                images.Add(image);
                moving.Add(circuit);
                continue;
            }

            RelayEvents.CircuitNotHandedOver.Log(_log, circuit.Entry.Id, circuit.Entry.Route, problems[i]!);
            failed.Add(circuit);
        }

        // Unguarded, out of repair mode and thawed in one go: they run on here until the addresses go.
        Resume(failed);
        return (images, moving, failed);
    }

    /// <summary>The socket's 4-tuple, or null for a socket closed under the freeze (it has none to guard).</summary>
    private static TcpTuple? TupleOf(Socket socket)
    {
        try
        {
            return new TcpTuple((IPEndPoint)socket.LocalEndPoint!, (IPEndPoint)socket.RemoteEndPoint!);
        }
        catch (Exception e) when (e is ObjectDisposedException or SocketException)
        {
            return null;
        }
    }

    /// <summary>Both sockets' 4-tuples of each circuit: what the guard drops while they move.</summary>
    private static TcpTuple[] TuplesOf(IEnumerable<CircuitHandoverProtocol.Frozen> circuits) =>
        circuits.SelectMany(f => (TcpTuple?[])[TupleOf(f.Client), TupleOf(f.Upstream)]).OfType<TcpTuple>().ToArray();

    /// <summary>
    /// The circuit's image. Each socket's receive queue travels in user space, after the
    /// relay's own buffer for the same direction: those bytes are acknowledged and next to be
    /// read, so the target's pump writes them first and restores the socket with an empty
    /// receive queue. Writing megabytes into a restored socket's receive queue fails with
    /// ENOBUFS once the host's TCP memory is under pressure (many full-speed circuits), and
    /// would cost the pause a copy into the kernel besides.
    /// </summary>
    private static CircuitImage ImageOf(CircuitHandoverProtocol.Frozen circuit, TcpSocketImage client, TcpSocketImage upstream)
    {
        var entry = circuit.Entry;
        var counters = entry.Counters;
        var clientQueued = client.ReceiveQueue;
        var upstreamQueued = upstream.ReceiveQueue;
        return new CircuitImage
        {
            Id = entry.Id,
            Route = entry.Route,
            Node = entry.Node,
            OpenedAt = entry.OpenedAt,
            QuietMs = circuit.QuietMs,
            BytesUp = counters.BytesUp,
            BytesDown = counters.BytesDown,
            ReadUp = counters.ReadUp + clientQueued.Length,
            ReadDown = counters.ReadDown + upstreamQueued.Length,
            Moves = entry.Moves,
            LastMovedAt = entry.MovedAt,
            Upstream = entry.Upstream,
            Client = entry.Client as IPEndPoint ?? new IPEndPoint(IPAddress.None, 0),
            ProxiedDestination = entry.ProxiedDestination,
            Phase = CircuitImage.PhaseOf(circuit.Up, circuit.Down),
            ClientSocket = client with { ReceiveQueue = ReadOnlyMemory<byte>.Empty },
            UpstreamSocket = upstream with { ReceiveQueue = ReadOnlyMemory<byte>.Empty },
            ToUpstream = Join(circuit.ToUpstream, clientQueued),
            ToClient = Join(circuit.ToClient, upstreamQueued),
        };
    }

    /// <summary><paramref name="first"/> then <paramref name="second"/>, copied only when both hold bytes.</summary>
    internal static ReadOnlyMemory<byte> Join(ReadOnlyMemory<byte> first, ReadOnlyMemory<byte> second)
    {
        if (first.IsEmpty)
        {
            return second;
        }

        if (second.IsEmpty)
        {
            return first;
        }

        var both = new byte[first.Length + second.Length];
        first.CopyTo(both);
        second.CopyTo(both.AsMemory(first.Length));
        return both;
    }

    private static long QueuedBytes(CircuitImage image) =>
        image.ToUpstream.Length + image.ToClient.Length
        + image.ClientSocket.SendQueue.Length + image.ClientSocket.ReceiveQueue.Length
        + image.UpstreamSocket.SendQueue.Length + image.UpstreamSocket.ReceiveQueue.Length;

    /// <summary>
    /// Sends the images over the target's state channel, in batches, and waits for the target
    /// to say which it holds; on that answer, commits. Without the ids, a problem: the target
    /// did not answer in time or the channel failed before the commit, so nothing was committed
    /// and the caller rolls back.
    /// </summary>
    private async Task<(long[]? Ids, string? Problem)> ShipAsync(string id, StateChannel channel, List<CircuitImage> images, SecondWave secondWave)
    {
        var committed = false;
        long[] ids = [];
        try
        {
            // Each step is bounded (a frame sent, or the target's answer), not the wave: a first
            // wave of full-speed circuits can hold a gigabyte, which a loaded pair of nodes takes
            // seconds to ship and restore. A target that keeps taking batches is working, and a
            // rollback then would only have paused every circuit for nothing; a target that
            // stops answering is given up on within the timeout of its step.
            if (secondWave.Circuits.Count > 0)
            {
                var tuples = TuplesOf(secondWave.Circuits);
                using var step = Step(CancellationToken.None, Settings.Timeout);
                await channel.SendAsync(HandoverProtocol.Frames.Tuples, writer => CircuitImageFormat.WriteTuples(writer, tuples), step.Token);
            }

            ids = await SendWaveAsync(channel, images, CancellationToken.None, eachStep: Settings.Timeout);
            // The fence: once Commit is in the channel, the circuits are the target's, both waves.
            committed = true;
            await channel.SendAsync(HandoverProtocol.Frames.Commit, ReadOnlyMemory<byte>.Empty, CancellationToken.None);
            secondWave.Committed();
            if (secondWave.Expected)
            {
                var (quietImages, _, failed) = Dump(secondWave.Circuits);
                secondWave.Failed.AddRange(failed);
                secondWave.BytesMoved = quietImages.Sum(QueuedBytes);
                // No bound on the whole wave, only on each step: after the commit a timeout can
                // only lose circuits, and a quiet wave may still be large (full-speed circuits
                // backed off behind a full receiver look quiet, with megabytes queued). A
                // target that takes each batch in time takes them all.
                ids = [.. ids, .. await SendWaveAsync(channel, quietImages, CancellationToken.None, eachStep: Settings.Timeout)];
            }

            // The target's last word (how many its routes adopted) is for its own log: a source
            // that stops waiting for it changes nothing.
            try
            {
                using var last = await channel.ReceiveAsync(CancellationToken.None).AsTask().WaitAsync(Settings.Timeout);
            }
            catch (Exception e) when (e is IOException or SocketException or TimeoutException or ObjectDisposedException or StateChannelException)
            {
                // Committed already: whatever happens to the channel now, the circuits are the target's.
            }

            return (ids, null);
        }
        catch (Exception e) when (!committed)
        {
            // Any failure before the commit rolls back, whatever threw: the circuits are frozen
            // and the addresses gone, and only a rollback gives them back.
            var problem = e is OperationCanceledException
                ? $"the target did not take a batch of circuits (or answer) within {Settings.Timeout.TotalSeconds:0.###} s"
                : e.Message;
            RelayEvents.HandoverChannelFailed.Log(_log, id, problem);
            return (null, problem);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException or TcpRepairException)
        {
            // The commit was written and the channel failed under it: the target may have the
            // circuits, so they are the target's (the fence never resumes them here); those it
            // confirmed count as moved, the rest as lost.
            RelayEvents.HandoverChannelFailed.Log(_log, id, e.Message);
            return (ids, null);
        }
        finally
        {
            // Closed before a rollback takes the addresses back: the target, seeing it end
            // uncommitted, lets go of the addresses it added instead of holding them beside
            // this node's.
            channel.Dispose();
        }
    }

    /// <summary>Sends the images in batches, then the end of them; the ids the target says it holds.</summary>
    /// <param name="total">Bounds the whole wave, when cancellable.</param>
    /// <param name="eachStep">Bounds each batch's send and the wait for the answer, when set.</param>
    private async Task<long[]> SendWaveAsync(StateChannel channel, List<CircuitImage> images, CancellationToken total, TimeSpan? eachStep = null)
    {
        foreach (var batch in Batches(images, Math.Max(1, Settings.BatchSize)))
        {
            using var sending = Step(total, eachStep);
            await channel.SendAsync(HandoverProtocol.Frames.Circuits, writer =>
            {
                CircuitImageFormat.WriteBatchHeader(writer, batch.Count);
                foreach (var image in batch)
                {
                    CircuitImageFormat.Write(writer, image);
                }
            }, sending.Token);
        }

        using var ending = Step(total, eachStep);
        await channel.SendAsync(HandoverProtocol.Frames.EndOfCircuits, ReadOnlyMemory<byte>.Empty, ending.Token);
        using var answer = await channel.ReceiveAsync(ending.Token);
        if (answer is not { Type: HandoverProtocol.Frames.Restored })
        {
            throw new IOException($"the target ended the state channel without holding the circuits (frame {answer?.Type.ToString() ?? "none"})");
        }

        return ReadIds(answer.Payload.Span);
    }

    private static CancellationTokenSource Step(CancellationToken total, TimeSpan? eachStep)
    {
        var step = CancellationTokenSource.CreateLinkedTokenSource(total);
        if (eachStep is { } bound)
        {
            step.CancelAfter(bound);
        }

        return step;
    }

    /// <summary>
    /// The images in batches of at most <paramref name="count"/> circuits and
    /// <see cref="BatchBytes"/> of queued bytes (a batch is one state channel frame, whose size
    /// is bounded; a full-speed circuit can hold tens of megabytes in its queues). A circuit
    /// larger than that goes alone.
    /// </summary>
    private static IEnumerable<List<CircuitImage>> Batches(List<CircuitImage> images, int count)
    {
        var batch = new List<CircuitImage>();
        long bytes = 0;
        foreach (var image in images)
        {
            var size = QueuedBytes(image) + ImageOverhead;
            if (batch.Count > 0 && (batch.Count >= count || bytes + size > BatchBytes))
            {
                yield return batch;
                batch = [];
                bytes = 0;
            }

            batch.Add(image);
            bytes += size;
        }

        if (batch.Count > 0)
        {
            yield return batch;
        }
    }

    internal static byte[] WriteIds(IReadOnlyCollection<long> ids)
    {
        var bytes = new byte[4 + (8 * ids.Count)];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, ids.Count);
        var at = 4;
        foreach (var id in ids)
        {
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(at), id);
            at += 8;
        }

        return bytes;
    }

    internal static long[] ReadIds(ReadOnlySpan<byte> payload)
    {
        if (payload.Length < 4)
        {
            throw new IOException("state channel: a Restored frame shorter than its count");
        }

        var count = BinaryPrimitives.ReadInt32LittleEndian(payload);
        if (count < 0 || payload.Length != 4 + (8L * count))
        {
            throw new IOException($"state channel: a Restored frame of {payload.Length} bytes cannot hold {count} ids");
        }

        var ids = new long[count];
        for (var i = 0; i < count; i++)
        {
            ids[i] = BinaryPrimitives.ReadInt64LittleEndian(payload[(4 + (8 * i))..]);
        }

        return ids;
    }

    /// <summary>Lets go of the moved circuits: each supervisor leaves the table, then its sockets close without a packet.</summary>
    private async Task<(int Moved, int Lost)> ReleaseAsync(List<CircuitHandoverProtocol.Frozen> moving, long[] restoredIds)
    {
        var restored = restoredIds.ToHashSet();
        var releases = moving.Select(async circuit =>
        {
            try
            {
                await circuit.Entry.Supervisor.Ask<CircuitHandoverProtocol.Released>(new CircuitHandoverProtocol.Release(circuit.Entry.Id), AskTimeout);
            }
            catch (Exception e) when (e is AskTimeoutException or TaskCanceledException)
            {
                // The supervisor is gone or stuck: its sockets are still closed below, silently.
            }

            CloseQuietly(circuit.Client);
            CloseQuietly(circuit.Upstream);
        });
        await Task.WhenAll(releases);
        var moved = moving.Count(c => restored.Contains(c.Entry.Id));
        return (moved, moving.Count - moved);
    }

    private void CloseQuietly(Socket socket)
    {
        try
        {
            TcpRepair.CloseSilently(socket);
        }
        catch (TcpRepairException e)
        {
            // Repair mode refused: keep the socket open rather than send a FIN or reset on a
            // connection that lives on elsewhere; it goes when the process does.
            RelayEvents.HandoverChannelFailed.Log(_log, "close", e.Message);
        }
    }

    /// <summary>Nothing was committed: the addresses come back, and every frozen circuit goes on here.</summary>
    private async Task RollBackAsync(List<CircuitHandoverProtocol.Frozen> moving)
    {
        _cluster.FloatingAddresses?.Add();
        Resume(moving);
        await _guardian.Ask<object>(RelayGuardian.StartServing.Instance, AskTimeout);
        _cluster.FloatingAddresses?.Announce();
    }

    /// <summary>Unguards the circuits' tuples, takes their sockets out of repair mode (with a window probe) and thaws them.</summary>
    private void Resume(IReadOnlyList<CircuitHandoverProtocol.Frozen> circuits)
    {
        try
        {
            _guard!.Remove(TuplesOf(circuits));
        }
        catch (TupleGuardException e)
        {
            // The circuits go on regardless: their tuples pass again when the elements expire.
            RelayEvents.HandoverChannelFailed.Log(_log, "unguard", e.Message);
        }

        foreach (var circuit in circuits)
        {
            foreach (var socket in (Socket[])[circuit.Client, circuit.Upstream])
            {
                try
                {
                    TcpRepair.LeaveRepair(socket, windowProbe: true);
                }
                catch (TcpRepairException)
                {
                    // Never entered (the dump failed before): nothing to leave.
                }
            }

            // Leaving repair mode clears the reuse flag an accepted socket has from its
            // listener; without it the route's listener cannot bind again next to the circuit
            // when this node serves again (EADDRINUSE), as after a rollback.
            try
            {
                circuit.Client.SetRawSocketOption(SysSocket.SOL_SOCKET, SysSocket.SO_REUSEADDR, BitConverter.GetBytes(1));
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // Closed under the freeze (the dump failed for it): no listener to bind next to.
            }

            circuit.Entry.Supervisor.Tell(new CircuitHandoverProtocol.Thaw(circuit.Entry.Id));
        }
    }

    /// <summary>
    /// Lifts the guard from the tuples this node handed away earlier: the service is back here,
    /// any of those circuits still alive came back with it (and was guarded and unguarded
    /// again), and a new connection of this node must not meet a drop meant for a closed one.
    /// </summary>
    private void ForgetHandedAway()
    {
        if (_handedAway.Count == 0)
        {
            return;
        }

        try
        {
            _guard!.Remove(CollectionsMarshal.AsSpan(_handedAway));
        }
        catch (TupleGuardException e)
        {
            RelayEvents.HandoverChannelFailed.Log(_log, "unguard handed-away tuples", e.Message);
        }

        _handedAway.Clear();
    }

    /// <summary>
    /// Tells the service's singleton (on the oldest member, maybe this one) who holds the
    /// service now, so it neither re-takes it while another node holds it nor forgets to when
    /// that node goes. Sent by both sides; the singleton keeps the last word.
    /// </summary>
    private void TellOwnerSingleton(Address holder)
    {
        var oldest = _cluster.Cluster.State.Members
            .Where(m => m.Status is MemberStatus.Up or MemberStatus.Leaving)
            .OrderBy(m => m, Member.AgeOrdering)
            .FirstOrDefault();
        if (oldest is null)
        {
            return;
        }

        var singleton = Context.ActorSelection(new RootActorPath(oldest.Address) / "user" / "service-owner" / "owner");
        singleton.Tell(new ServiceOwnerActor.ServiceMoved(holder.Equals(oldest.Address) ? null : holder));
    }

    private static async Task<IPAddress> HostAddressAsync(Address address)
    {
        var host = address.Host ?? throw new InvalidOperationException($"{address} has no host");
        return IPAddress.TryParse(host, out var ip) ? ip : (await Dns.GetHostAddressesAsync(host)).First();
    }

    // ---------------------------------------------------------------- the target

    private async Task TakeOverAsync(HandoverProtocol.Prepare prepare)
    {
        var source = Sender;
        var sourceMember = _cluster.Cluster.State.Members.FirstOrDefault(m => m.Status == MemberStatus.Up && m.Address.Equals(source.Path.Address));
        if (_unavailable is not null || sourceMember is null || !IPAddress.TryParse(prepare.SourceHost, out var sourceIp))
        {
            var why = _unavailable ?? (sourceMember is null ? $"{source.Path.Address} is not an Up member" : $"bad source address {prepare.SourceHost}");
            source.Tell(new HandoverProtocol.Refused(prepare.HandoverId, why));
            return;
        }

        using var downingHold = HoldDowning(prepare.HandoverId + "/target", source.Path.Address, _cluster.Cluster.SelfAddress, tellOthers: false);
        // The routes bind now, on the VIP the source still holds (IP_FREEBIND; they see no
        // traffic until the address is here), while the source still serves: binding costs
        // tens of milliseconds, the first time more, and none of it falls in the pause.
        if (!await StartServingAsync())
        {
            await AbortAsync(null);
            source.Tell(new HandoverProtocol.Refused(prepare.HandoverId, "this node could not bind its routes (see its log)"));
            return;
        }

        var selfIp = await HostAddressAsync(_cluster.Cluster.SelfAddress);
        // The source connects once it has frozen and dumped every circuit, which takes longer
        // the more bytes they hold: the offer outlasts that and the source's own ship timeout.
        using var offer = StateChannelOffer.Open(selfIp, sourceIp, (Settings.Timeout * 2) + AskTimeout,
            rejected => RelayEvents.StateChannelRejected.Log(_log, rejected.Peer.ToString(), rejected.Reason));
        var twoWaves = prepare.Waves >= HandoverProtocol.TwoWaves && Settings.Waves >= HandoverProtocol.TwoWaves;
        source.Tell(new HandoverProtocol.Offer(prepare.HandoverId, offer.Port, offer.Token.ToArray(), twoWaves ? HandoverProtocol.TwoWaves : 1));

        var receiver = new CircuitReceiver(_guard!, _cluster.FloatingAddresses, Settings, () => Task.FromResult(true));
        // The addresses arrive here before the routes bind: a new connection in between is
        // dropped (its SYN retried), not refused.
        HoldNewConnections();
        try
        {
            using var channel = await offer.AcceptAsync();
            var committed = await receiver.ReceiveAsync(channel);

            if (!committed)
            {
                await AbortAsync(receiver);
                RelayEvents.HandoverFailed.Log(_log, source.Path.Address.ToString(), "the source called the handover off before committing");
                return;
            }

            var adoption = await AdoptAsync(receiver, twoWaves ? channel : null, prepare.HandoverId);
            try
            {
                await channel.SendAsync(HandoverProtocol.Frames.Committed, HandoverCoordinator.WriteIds([adoption.Adopted]), CancellationToken.None);
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or StateChannelException)
            {
                // The last word is for the source's log, and a source that waited long enough
                // has closed the channel: the circuits run here regardless.
                RelayEvents.HandoverChannelFailed.Log(_log, prepare.HandoverId, $"after the commit: {e.Message}");
            }

            _cluster.StateActor.Tell(CircuitStateActor.PublishNow.Instance);
            // Both waves' circuits whose sockets could not be restored here (the kernel short of
            // TCP memory, say): the source counts them reset; they are named here.
            foreach (var (circuitId, route, why) in receiver.NotRestored)
            {
                RelayEvents.CircuitNotHandedOver.Log(_log, circuitId, route, why);
            }

            RelayEvents.HandoverReceived.Log(_log, prepare.HandoverId, source.Path.Address.ToString(), adoption.Adopted,
                receiver.Count + receiver.NotRestored.Count - adoption.Adopted, adoption.BusyLiveMs, adoption.AllLiveMs);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or TimeoutException or ObjectDisposedException
                                       or TcpRepairException or FormatException or TupleGuardException)
        {
            if (receiver.Committed)
            {
                // Past the commit the service and the circuits are this node's: a failure now
                // (the adoption, the channel) is reported, never rolled back here.
                RelayEvents.HandoverChannelFailed.Log(_log, prepare.HandoverId, $"after the commit: {e.Message}");
                return;
            }

            await AbortAsync(receiver);
            RelayEvents.HandoverFailed.Log(_log, source.Path.Address.ToString(), e.Message);
        }
        finally
        {
            ReleaseNewConnections();
        }
    }

    private RelayGuardian.RoutesBound? _boundRoutes;

    /// <summary>Binds the routes here (a standby serves none): true once every route listens (on the VIP, before it is here).</summary>
    private async Task<bool> StartServingAsync()
    {
        var answer = await _guardian.Ask<object>(RelayGuardian.StartServing.Instance, AskTimeout);
        _boundRoutes = answer as RelayGuardian.RoutesBound;
        return _boundRoutes is not null;
    }

    /// <summary>Not committed: the restored sockets go silently, and this node serves nothing again.</summary>
    private async Task AbortAsync(CircuitReceiver? receiver)
    {
        receiver?.Abort();
        if (_boundRoutes is not null || !_cluster.Service.IsOwner)
        {
            _boundRoutes = null;
            await _guardian.Ask<object>(RelayGuardian.StopServing.Instance, AskTimeout);
        }
    }

    /// <summary>
    /// Committed: the restored circuits go live here. The addresses are announced first: the
    /// peers' ARP caches still point at the old node, which drops what they send (it no longer
    /// holds the addresses), and the window probe each socket sends as it leaves repair mode
    /// must draw its answer here, or the socket has no round-trip sample and waits out a
    /// 1 s retransmission timeout for its first lost segment. Then the busy circuits (those
    /// that moved a byte within <see cref="CircuitReceiver.BusyWithinMs"/>) are unguarded,
    /// leave repair mode and are adopted by their routes; only then the quiet ones, in chunks,
    /// so that the cores run the busy circuits' pumps between the chunks. A streaming circuit's
    /// pause is then the same with 50 circuits as with 5,000. From the moment a socket leaves
    /// repair mode the kernel takes its peer's segments; its pumps read them once its route
    /// has adopted it.
    /// </summary>
    /// <param name="secondWave">The channel the quiet circuits come on after the commit (a two-wave handover), or null: they came before it.</param>
    private async Task<Adoption> AdoptAsync(CircuitReceiver receiver, StateChannel? secondWave, string handoverId)
    {
        var clock = Stopwatch.StartNew();
        // The addresses were added with a lifetime, for a target that dies before the commit.
        if (_cluster.FloatingAddresses?.Add() is { Ok: false } permanent)
        {
            RelayEvents.VipAddFailed.Log(_log, permanent.Address?.Address.ToString() ?? "(all)", permanent.Address?.Device ?? "", permanent.Problem,
                "the next take-over");
        }

        _cluster.FloatingAddresses?.Announce();
        // In two waves everything restored so far is the first wave, the busy circuits; in one,
        // the busy ones are picked out of all.
        var adopted = await AdoptEachRouteAsync(receiver.GoLive(secondWave is null ? CircuitReceiver.IsBusy : _ => true), int.MaxValue);
        var busyMs = clock.Elapsed.TotalMilliseconds;
        ReleaseNewConnections();
        ForgetHandedAway();
        if (_boundRoutes is { } routes)
        {
            _cluster.Service.TookOver(routes.Routes);
        }

        TellOwnerSingleton(_cluster.Cluster.SelfAddress);
        if (secondWave is not null)
        {
            try
            {
                await receiver.ReceiveSecondWaveAsync(secondWave);
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException
                                           or FormatException or TupleGuardException or StateChannelException)
            {
                // Committed: what arrived runs here; what did not is lost, and says so.
                RelayEvents.HandoverChannelFailed.Log(_log, handoverId, $"second wave: {e.Message}");
            }
        }

        adopted += await AdoptEachRouteAsync(receiver.GoLive(_ => true), QuietChunk);
        receiver.UnguardRest();
        return new Adoption(adopted, busyMs, clock.Elapsed.TotalMilliseconds);
    }

    /// <summary>Quiet circuits per adoption message: small enough that a core runs its busy circuits between two chunks.</summary>
    private const int QuietChunk = 128;

    /// <summary>How many circuits the routes here adopted, and how long after the commit the busy ones and all of them ran.</summary>
    private sealed record Adoption(int Adopted, double BusyLiveMs, double AllLiveMs);

    /// <summary>
    /// Each route adopts its circuits, in messages of at most <paramref name="chunk"/>; a circuit
    /// that its route refuses, or whose route does not answer, is reset (it can run nowhere).
    /// </summary>
    private async Task<int> AdoptEachRouteAsync(List<ReceivedCircuit> circuits, int chunk)
    {
        var parts = circuits.GroupBy(circuit => circuit.Route).SelectMany(route => route.Chunk(chunk)).ToList();
        var answers = await Task.WhenAll(parts.Select(part => _guardian
            .Ask<ListenerProtocol.CircuitsAdopted>(new ListenerProtocol.AdoptCircuits(part[0].Route, part.Select(c => c.Moved).ToList()), AskTimeout)
            .ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : null, TaskScheduler.Default)));
        var adopted = 0;
        for (var i = 0; i < parts.Count; i++)
        {
            var refused = answers[i]?.Refused.ToDictionary(r => r.Id, r => r.Why);
            foreach (var circuit in parts[i])
            {
                if (refused is not null && !refused.TryGetValue(circuit.Moved.Id, out _))
                {
                    adopted++;
                    continue;
                }

                var why = refused is null ? "no answer from its route" : refused[circuit.Moved.Id];
                RelayEvents.CircuitNotHandedOver.Log(_log, circuit.Moved.Id, circuit.Route, why);
                CircuitReceiver.Reset(circuit);
            }
        }

        return adopted;
    }
}
