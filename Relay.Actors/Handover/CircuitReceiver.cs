using System.Net;
using System.Net.Sockets;
using Relay.Actors.Circuits;
using Relay.Actors.Cluster;
using Relay.Actors.Configuration;
using Relay.Actors.Native;
using Relay.Actors.Sockets;

namespace Relay.Actors.Handover;

/// <summary>
/// The target's side of one handover's state channel: it reads the circuit images as they
/// arrive, batch by batch, and restores each circuit's two sockets (guarded, and still in
/// repair mode: no packet of theirs passes until <see cref="GoLive"/>), so that most of the
/// restoring is done while later batches are still on the wire. It says which circuits it
/// holds once the source has sent them all, and reports whether the source committed.
/// </summary>
/// <param name="startServing">Binds this node's routes; called once the addresses are here and before the first restore.</param>
internal sealed class CircuitReceiver(TupleGuard guard, VipController? addresses, HandoverSettings settings, Func<Task<bool>> startServing)
{
    private readonly List<ReceivedCircuit> _circuits = [];
    /// <summary>How long past the source's ship timeout the addresses taken before the commit live, should this process die.</summary>
    private static readonly TimeSpan UncommittedAddressMargin = TimeSpan.FromSeconds(5);

    private readonly List<TcpTuple> _guarded = [];
    private long _addressesRenewedMs;
    private readonly HashSet<TcpTuple> _unguarded = [];
    // Parallel to _circuits: which have gone live (left repair mode, unguarded).
    private readonly List<bool> _live = [];
    private bool _addressesAdded;
    // How many circuits came before the commit (the first wave).
    private int _firstWave;

    /// <summary>The circuits restored so far, in the order they came.</summary>
    public IReadOnlyList<ReceivedCircuit> Circuits => _circuits;

    public int Count => _circuits.Count;

    /// <summary>Whether the source's Commit came: from then on the circuits and the addresses are this node's, whatever fails.</summary>
    public bool Committed { get; private set; }

    /// <summary>Circuits whose sockets could not be restored here, with why.</summary>
    public List<(long Id, string Route, string Why)> NotRestored { get; } = [];

    /// <summary>
    /// Reads frames until the source commits (true) or ends the channel without committing
    /// (false: the caller aborts). Every image is restored as it arrives; a circuit whose
    /// restore fails is left out of the answer, and the source closes it.
    /// </summary>
    public async Task<bool> ReceiveAsync(StateChannel channel)
    {
        while (true)
        {
            // A bound per frame, as the source bounds each of its steps: a large first wave that
            // keeps coming is not a failure.
            using var deadline = new CancellationTokenSource(settings.Timeout * 2);
            using var frame = await channel.ReceiveAsync(deadline.Token);
            // Uncommitted addresses live a step's bound past the last frame: renewed as the
            // frames come, they outlast a long first wave and still go soon after a source dies.
            RenewAddresses();
            switch (frame?.Type)
            {
                case null:
                    return false;

                case HandoverProtocol.Frames.Circuits:
                    var images = ReadBatch(frame.Payload.Span);
                    Guard(images);
                    if (!_addressesAdded)
                    {
                        await TakeAddressesAsync();
                    }

                    RestoreAll(images);
                    break;

                case HandoverProtocol.Frames.Tuples:
                    // The second wave's connections: dropped from before the addresses are here
                    // until their images come, after the commit.
                    GuardTuples(CircuitImageFormat.ReadTuples(frame.Payload.Span));
                    if (!_addressesAdded)
                    {
                        await TakeAddressesAsync();
                    }

                    break;

                case HandoverProtocol.Frames.EndOfCircuits:
                    var ids = _circuits.Select(c => c.Moved.Id).ToList();
                    await channel.SendAsync(HandoverProtocol.Frames.Restored, HandoverCoordinator.WriteIds(ids), deadline.Token);
                    break;

                case HandoverProtocol.Frames.Commit:
                    _firstWave = _circuits.Count;
                    Committed = true;
                    return true;

                default:
                    throw new IOException($"state channel: unexpected frame type {frame.Type}");
            }
        }
    }

    /// <summary>
    /// After the commit of a two-wave handover: restores the quiet circuits' images as they
    /// come, until the source's end of them, and answers with their ids. The commit covered
    /// them already; a circuit that does not arrive (the channel failed, the source died) is
    /// lost, as one whose restore fails: its tuples are unguarded at the end
    /// (<see cref="UnguardRest"/>) and its peers meet this node's stack, which resets them.
    /// </summary>
    public async Task ReceiveSecondWaveAsync(StateChannel channel)
    {
        while (true)
        {
            // A bound per frame, not on the wave: the source bounds each of its steps alike, and
            // a large quiet wave that keeps coming is not a failure.
            using var deadline = new CancellationTokenSource(settings.Timeout * 2);
            using var frame = await channel.ReceiveAsync(deadline.Token);
            switch (frame?.Type)
            {
                case null:
                    throw new IOException("the source ended the state channel before the end of the second wave");

                case HandoverProtocol.Frames.Circuits:
                    var images = ReadBatch(frame.Payload.Span);
                    Guard(images);
                    RestoreAll(images);
                    break;

                case HandoverProtocol.Frames.EndOfCircuits:
                    var ids = _circuits.Skip(_firstWave).Select(c => c.Moved.Id).ToList();
                    await channel.SendAsync(HandoverProtocol.Frames.Restored, HandoverCoordinator.WriteIds(ids), deadline.Token);
                    return;

                default:
                    throw new IOException($"state channel: unexpected frame type {frame.Type} in the second wave");
            }
        }
    }

    private static List<CircuitImage> ReadBatch(ReadOnlySpan<byte> payload)
    {
        var count = CircuitImageFormat.ReadBatchHeader(payload);
        payload = payload[CircuitImageFormat.BatchHeaderBytes..];
        var images = new List<CircuitImage>(count);
        for (var i = 0; i < count; i++)
        {
            images.Add(CircuitImageFormat.Read(payload, out var consumed));
            payload = payload[consumed..];
        }

        return images;
    }

    /// <summary>
    /// The tuples are dropped before the addresses exist here, so no segment that arrives
    /// meanwhile meets a node without the connection (which would reset it).
    /// </summary>
    private void Guard(List<CircuitImage> images) =>
        GuardTuples(images.SelectMany(image => (TcpTuple[])[TupleOf(image.ClientSocket), TupleOf(image.UpstreamSocket)]).ToArray());

    private void GuardTuples(TcpTuple[] tuples)
    {
        guard.Add(tuples, settings.GuardTimeout);
        _guarded.AddRange(tuples);
    }

    /// <summary>Before the commit, once a second: the added addresses' lifetime starts again (an address replaced, as <c>ip addr replace</c>).</summary>
    private void RenewAddresses()
    {
        if (!_addressesAdded || Environment.TickCount64 - _addressesRenewedMs < 1000)
        {
            return;
        }

        _addressesRenewedMs = Environment.TickCount64;
        if (addresses?.Add(settings.Timeout + UncommittedAddressMargin) is { Ok: false } failed)
        {
            throw new IOException($"cannot renew the floating addresses: {failed.Problem}");
        }
    }

    /// <summary>
    /// The service and egress addresses come here, then the routes are bound on them: the
    /// restored sockets bind next to their route's listener (repair mode allows it, while a
    /// listener could not bind next to established sockets), and from now on new clients
    /// reach this node, whose listener takes them. Until the commit the addresses have a
    /// lifetime (the source's ship timeout and a margin): if this process dies before it,
    /// the source rolls back and takes them again, and the kernel here removes them by
    /// itself instead of answering for them beside the source. The commit makes them
    /// permanent (<see cref="HandoverCoordinator"/>).
    /// </summary>
    private async Task TakeAddressesAsync()
    {
        if (addresses?.Add(settings.Timeout + UncommittedAddressMargin) is { Ok: false } failed)
        {
            throw new IOException($"cannot add the floating addresses: {failed.Problem}");
        }

        _addressesAdded = true;
        _addressesRenewedMs = Environment.TickCount64;
        if (!await startServing())
        {
            throw new IOException("the routes could not be bound on this node");
        }
    }

    private void RestoreAll(List<CircuitImage> images)
    {
        foreach (var image in images)
        {
            try
            {
                _circuits.Add(Restore(image));
                _live.Add(false);
            }
            catch (Exception e) when (e is TcpRepairException or SocketException)
            {
                // Left out of the answer: the source counts it lost and closes its sockets.
                NotRestored.Add((image.Id, image.Route, e.Message));
            }
        }
    }

    private static TcpTuple TupleOf(TcpSocketImage socket) => new(socket.Local, socket.Remote);

    private static ReceivedCircuit Restore(CircuitImage image)
    {
        var client = TcpRepair.Restore(image.ClientSocket, out var clientUnsent);
        Socket upstream;
        ReadOnlyMemory<byte> upstreamUnsent;
        try
        {
            upstream = TcpRepair.Restore(image.UpstreamSocket, out upstreamUnsent);
        }
        catch
        {
            TcpRepair.CloseSilently(client);
            throw;
        }

        // Held in repair mode until the commit: a socket that left it would send a FIN of its
        // own if this process died before the commit (the kernel closes it), and that FIN,
        // retransmitted past the guard's timeout or after the next start replaced the guard's
        // table, would end a circuit the source has taken back. Closed in repair mode, it goes
        // without a packet.
        // Per direction, the destination's never-sent bytes go first, then the old relay's.
        // The never-sent bytes were counted as written when the old relay put them in its
        // kernel; the pump here writes (and counts) them again, so they are taken off first.
        var moved = new MovedCircuit(image.Id, image.Client, image.ProxiedDestination, image.Upstream, image.OpenedAt, image.Moves + 1,
            image.BytesUp - upstreamUnsent.Length, image.BytesDown - clientUnsent.Length, image.ReadUp, image.ReadDown, image.QuietMs,
            new RestoredCircuit(client, upstream, HandoverCoordinator.Join(upstreamUnsent, image.ToUpstream), HandoverCoordinator.Join(clientUnsent, image.ToClient),
                EndHere(image.Up, image.UpstreamSocket), EndHere(image.Down, image.ClientSocket)));
        return new ReceivedCircuit(image.Route, moved, image);
    }

    /// <summary>
    /// What this node still does for a direction that had ended this far on the old one. A FIN
    /// the old node carried whose shutdown had not left its destination socket, behind bytes
    /// never sent (<see cref="TcpSocketImage.OwesFin"/>: fin-wait-1 behind a closed window), is
    /// owed again here: the pump writes those bytes and then shuts the socket down.
    /// </summary>
    private static DirectionEnd EndHere(DirectionEnd end, TcpSocketImage destination) =>
        end == DirectionEnd.FinCarried && destination.OwesFin ? DirectionEnd.FinOwed : end;

    /// <summary>
    /// A circuit that moved a byte within this long before its freeze is busy: it goes live
    /// (<see cref="GoLive"/>) and is adopted before the quiet ones, whose peers send nothing
    /// that could wait on them. Longer than a paced stream's tick or an interactive session's
    /// keystrokes, shorter than a keep-alive's idle time.
    /// </summary>
    public const long BusyWithinMs = 1000;

    /// <summary>Whether the circuit moved a byte shortly before its freeze (<see cref="BusyWithinMs"/>).</summary>
    public static bool IsBusy(ReceivedCircuit circuit) => circuit.Image.QuietMs < BusyWithinMs;

    /// <summary>
    /// Committed: the chosen circuits' tuples pass again, and each of their sockets sends the
    /// window probe it held back, then gets back the FINs its image had
    /// (<see cref="TcpRepair.ReplayHalfClose"/>: after the probe, which the kernel sends only
    /// from an established socket, and once the guard no longer drops the replayed peer FIN).
    /// A circuit whose sockets refuse is not adopted as it is: it starts, resets both peers and
    /// logs why (<see cref="RestoredCircuit.Problem"/>). Called once for the busy circuits and
    /// once for the rest, so that a streaming circuit runs again without waiting for the idle
    /// ones; each restored circuit goes live once. Returns those that went live now.
    /// </summary>
    public List<ReceivedCircuit> GoLive(Func<ReceivedCircuit, bool> which)
    {
        var chosen = new List<int>();
        for (var i = 0; i < _circuits.Count; i++)
        {
            if (!_live[i] && which(_circuits[i]))
            {
                chosen.Add(i);
            }
        }

        var tuples = chosen.SelectMany(i => (TcpTuple[])[TupleOf(_circuits[i].Image.ClientSocket), TupleOf(_circuits[i].Image.UpstreamSocket)]).ToArray();
        guard.Remove(tuples);
        _unguarded.UnionWith(tuples);
        var live = new List<ReceivedCircuit>(chosen.Count);
        foreach (var i in chosen)
        {
            _live[i] = true;
            var circuit = _circuits[i];
            var sockets = circuit.Moved.Sockets;
            try
            {
                TcpRepair.LeaveRepair(sockets.Client, windowProbe: true);
                TcpRepair.LeaveRepair(sockets.Upstream, windowProbe: true);
                // Leaving repair mode clears the socket's reuse flag; an accepted socket has
                // SO_REUSEADDR from its listener, and the route's listener may be bound again
                // (a reload, a drain and re-serve) while this circuit lives.
                sockets.Client.SetRawSocketOption(SysSocket.SOL_SOCKET, SysSocket.SO_REUSEADDR, BitConverter.GetBytes(1));
                TcpRepair.ReplayHalfClose(sockets.Client, circuit.Image.ClientSocket);
                TcpRepair.ReplayHalfClose(sockets.Upstream, circuit.Image.UpstreamSocket);
            }
            catch (TcpRepairException e)
            {
                _circuits[i] = circuit with { Moved = circuit.Moved with { Sockets = sockets with { Problem = e.Message } } };
            }

            live.Add(_circuits[i]);
        }

        return live;
    }

    /// <summary>Lifts what is left of the guard: the tuples of circuits whose restore failed here (their peers meet this node's stack now).</summary>
    public void UnguardRest()
    {
        var rest = _guarded.Where(tuple => !_unguarded.Contains(tuple)).ToArray();
        guard.Remove(rest);
        _unguarded.UnionWith(rest);
    }

    /// <summary>Not committed: every restored socket goes without a packet, and the addresses go back to the source.</summary>
    public void Abort()
    {
        if (Committed)
        {
            // The circuits are this node's since the commit, some already adopted and running,
            // and so are the addresses: nothing after it may take them apart.
            return;
        }

        foreach (var circuit in _circuits)
        {
            TcpRepair.CloseSilently(circuit.Moved.Sockets.Client);
            TcpRepair.CloseSilently(circuit.Moved.Sockets.Upstream);
        }

        _circuits.Clear();
        _live.Clear();
        if (_addressesAdded)
        {
            addresses?.Remove();
            _addressesAdded = false;
        }

        guard.Remove(_guarded.ToArray());
        _guarded.Clear();
    }

    /// <summary>A committed circuit that no route here would take: both peers are reset, since it can run nowhere.</summary>
    public static void Reset(ReceivedCircuit circuit)
    {
        foreach (var socket in (Socket[])[circuit.Moved.Sockets.Client, circuit.Moved.Sockets.Upstream])
        {
            try
            {
                socket.LingerState = new LingerOption(true, 0);
            }
            catch (SocketException)
            {
            }

            CircuitSockets.Close(socket);
        }
    }
}

/// <summary>A circuit restored on this node, waiting for the commit to be adopted by its route; <paramref name="Image"/> says which FINs its sockets get back then.</summary>
internal sealed record ReceivedCircuit(string Route, MovedCircuit Moved, CircuitImage Image);
