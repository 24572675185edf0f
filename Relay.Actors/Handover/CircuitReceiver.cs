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
/// repair mode: no packet of theirs passes until <see cref="Unguard"/>), so that most of the
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
    private bool _addressesAdded;

    /// <summary>The circuits restored so far, in the order they came.</summary>
    public IReadOnlyList<ReceivedCircuit> Circuits => _circuits;

    public int Count => _circuits.Count;

    /// <summary>Circuits whose sockets could not be restored here, with why.</summary>
    public List<(long Id, string Route, string Why)> NotRestored { get; } = [];

    /// <summary>
    /// Reads frames until the source commits (true) or ends the channel without committing
    /// (false: the caller aborts). Every image is restored as it arrives; a circuit whose
    /// restore fails is left out of the answer, and the source closes it.
    /// </summary>
    public async Task<bool> ReceiveAsync(StateChannel channel)
    {
        using var deadline = new CancellationTokenSource(settings.Timeout * 2);
        while (true)
        {
            using var frame = await channel.ReceiveAsync(deadline.Token);
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

                case HandoverProtocol.Frames.EndOfCircuits:
                    var ids = _circuits.Select(c => c.Moved.Id).ToList();
                    await channel.SendAsync(HandoverProtocol.Frames.Restored, HandoverCoordinator.WriteIds(ids), deadline.Token);
                    break;

                case HandoverProtocol.Frames.Commit:
                    return true;

                default:
                    throw new IOException($"state channel: unexpected frame type {frame.Type}");
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
    private void Guard(List<CircuitImage> images)
    {
        var tuples = images.SelectMany(image => (TcpTuple[])[TupleOf(image.ClientSocket), TupleOf(image.UpstreamSocket)]).ToArray();
        guard.Add(tuples, settings.GuardTimeout);
        _guarded.AddRange(tuples);
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
    /// Committed: the tuples pass again, and each socket sends the window probe it held back,
    /// then gets back the FINs its image had (<see cref="TcpRepair.ReplayHalfClose"/>: after the
    /// probe, which the kernel sends only from an established socket, and once the guard no
    /// longer drops the replayed peer FIN). A circuit whose sockets refuse is not adopted as it
    /// is: it starts, resets both peers and logs why (<see cref="RestoredCircuit.Problem"/>).
    /// </summary>
    public void Unguard()
    {
        guard.Remove(_guarded.ToArray());
        for (var i = 0; i < _circuits.Count; i++)
        {
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
        }
    }

    /// <summary>Not committed: every restored socket goes without a packet, and the addresses go back to the source.</summary>
    public void Abort()
    {
        foreach (var circuit in _circuits)
        {
            TcpRepair.CloseSilently(circuit.Moved.Sockets.Client);
            TcpRepair.CloseSilently(circuit.Moved.Sockets.Upstream);
        }

        _circuits.Clear();
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
