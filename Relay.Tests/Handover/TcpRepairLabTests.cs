using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Relay.Actors.Handover;
using Relay.Actors.Native;
using Relay.Actors.Tuning;
using Relay.Tests.Native;
using Relay.Tests.Support;
using Xunit.Abstractions;

namespace Relay.Tests.Handover;

/// <summary>
/// TCP_REPAIR against the real kernel (root), in network namespaces of this test (see
/// <see cref="RepairLab"/>). Each test makes a connection whose socket under test is in a
/// known state with bytes queued, dumps it, closes it silently, restores it (on the same node,
/// or on another namespace that takes its address over), and then drives both ends to a
/// normal close: every byte must arrive exactly once and in order both ways (a counter
/// pattern), both ends must read EOF, and no RST may be seen in any namespace (counted by nft
/// before the guard, so a dropped reset counts too).
/// </summary>
public sealed class TcpRepairLabTests(ITestOutputHelper output)
{
    public enum Family
    {
        V4,
        V6,
        /// <summary>A dual-stack IPv6 socket talking to an IPv4 peer (::ffff:a.b.c.d), as a [::] listener accepts.</summary>
        V4Mapped,
    }

    public enum Scenario
    {
        /// <summary>Both queues of the socket under test hold bytes: received and unread, sent and unacknowledged, never sent.</summary>
        Established,
        /// <summary>The peer's FIN is in, behind unread bytes; our send queue holds sent and unsent bytes.</summary>
        CloseWait,
        /// <summary>We shut down and our FIN left with the last bytes, neither acknowledged.</summary>
        FinWait1Sent,
        /// <summary>We shut down behind unsent bytes, so our FIN had not left.</summary>
        FinWait1Unsent,
        /// <summary>Our FIN was acknowledged; the peer still sends, into an unread receive queue.</summary>
        FinWait2,
    }

    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(20);

    [RootLabFact]
    public Task An_established_ipv4_socket_with_bytes_queued_every_way_is_restored_without_a_byte_lost_or_a_reset() =>
        InPlaceAsync(Family.V4, Scenario.Established);

    [RootLabFact]
    public Task An_established_ipv6_socket_with_bytes_queued_every_way_is_restored_without_a_byte_lost_or_a_reset() =>
        InPlaceAsync(Family.V6, Scenario.Established);

    [RootLabFact]
    public Task A_dual_stack_socket_of_an_ipv4_peer_is_restored_as_a_dual_stack_socket() =>
        InPlaceAsync(Family.V4Mapped, Scenario.Established);

    [RootLabFact]
    public Task A_close_wait_socket_reads_its_queued_bytes_then_the_replayed_fin() =>
        InPlaceAsync(Family.V4, Scenario.CloseWait);

    [RootLabFact]
    public Task A_fin_wait_1_socket_whose_fin_left_sends_it_again_and_has_it_acknowledged_at_once() =>
        InPlaceAsync(Family.V4, Scenario.FinWait1Sent);

    [RootLabFact]
    public Task A_fin_wait_1_socket_whose_fin_had_not_left_sends_it_after_its_unsent_bytes() =>
        InPlaceAsync(Family.V6, Scenario.FinWait1Unsent);

    [RootLabFact]
    public Task A_fin_wait_2_socket_sends_its_fin_again_and_is_fin_wait_2_at_once() =>
        InPlaceAsync(Family.V4, Scenario.FinWait2);

    [RootLabFact]
    public Task An_ipv4_connection_moves_to_another_namespace_while_the_peer_streams_both_ways() =>
        MoveAsync(Family.V4, Scenario.Established);

    [RootLabFact]
    public Task An_ipv6_connection_moves_to_another_namespace_while_the_peer_streams_both_ways() =>
        MoveAsync(Family.V6, Scenario.Established);

    [RootLabFact]
    public Task A_close_wait_connection_moves_to_another_namespace_and_then_closes_normally() =>
        MoveAsync(Family.V4, Scenario.CloseWait);

    [RootLabFact]
    public Task A_fin_wait_2_connection_moves_to_another_namespace_and_then_closes_normally() =>
        MoveAsync(Family.V6, Scenario.FinWait2);

    [RootLabFact]
    public async Task A_socket_that_cannot_be_dumped_or_restored_fails_with_one_line_naming_step_tuple_and_state_or_errno()
    {
        await using var lab = await RepairLab.OneNodeAsync();
        var (peer, subject, listener) = NetworkNamespace.Run(lab.Old, () => ConnectInPlace(Family.V4));
        using (peer)
        using (subject)
        using (listener)
        {
            var notInRepair = Assert.Throws<TcpRepairException>(() => TcpRepair.Dump(subject));
            output.WriteLine(notInRepair.Message);
            Assert.Equal($"dump {subject.LocalEndPoint} -> {subject.RemoteEndPoint}: the socket is not in repair mode (EnterRepair first)", notInRepair.Message);

            var listening = Assert.Throws<TcpRepairException>(() => TcpRepair.EnterRepair(listener));
            output.WriteLine(listening.Message);
            Assert.Equal(1, listening.Errno); // EPERM: the kernel refuses repair on a listener
            Assert.StartsWith($"enter repair mode {listener.LocalEndPoint} -> ?: setsockopt(TCP_REPAIR): ", listening.Message);
            Assert.EndsWith("(errno 1)", listening.Message);

            TcpRepair.EnterRepair(subject);
            var image = TcpRepair.Dump(subject) with { Local = new IPEndPoint(IPAddress.Parse("198.18.6.99"), 4000) };
            var nowhere = Assert.IsType<TcpRepairException>(
                Assert.Throws<InvalidOperationException>(() => NetworkNamespace.Run(lab.New, () => TcpRepair.Restore(image, out _))).InnerException);
            output.WriteLine(nowhere.Message);
            Assert.Equal(99, nowhere.Errno); // EADDRNOTAVAIL: the address is not on this node
            Assert.Equal($"restore 198.18.6.99:4000 -> {subject.RemoteEndPoint}: bind(198.18.6.99:4000): Cannot assign requested address (errno 99)", nowhere.Message);
            TcpRepair.LeaveRepair(subject, windowProbe: false);

            // Both sides closed, our FIN unacknowledged: nothing left to move.
            peer.Shutdown(SocketShutdown.Send);
            await AwaitStateAsync(subject, KernelTcpState.CloseWait);
            var (local, remote) = ((IPEndPoint)subject.LocalEndPoint!, (IPEndPoint)subject.RemoteEndPoint!);
            await lab.GuardAsync(lab.Old, add: true, local, remote, outbound: false);
            subject.Shutdown(SocketShutdown.Send);
            await AwaitStateAsync(subject, KernelTcpState.LastAck);
            TcpRepair.EnterRepair(subject);
            var lastAck = Assert.Throws<TcpRepairException>(() => TcpRepair.Dump(subject));
            output.WriteLine(lastAck.Message);
            Assert.Equal($"dump {local} -> {remote}: state LastAck cannot be moved (only established, close-wait, fin-wait-1 and fin-wait-2 can): let it finish on this node", lastAck.Message);
            TcpRepair.LeaveRepair(subject, windowProbe: false);

            var unconnected = NetworkNamespace.Run(lab.Old, () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
            using (unconnected)
            {
                TcpRepair.EnterRepair(unconnected);
                var closed = Assert.Throws<TcpRepairException>(() => TcpRepair.Dump(unconnected));
                output.WriteLine(closed.Message);
                Assert.Matches(@"^dump socket \d+: getpeername: Transport endpoint is not connected \(errno 107\)$", closed.Message);
            }
        }
    }

    /// <summary>
    /// How long the pause of a handover spends per socket here: dump, silent close and restore
    /// of one connection 30 times in a row (each restore is the next dump's subject), with
    /// empty queues and with about 1 MB in each queue, and the binary image of a circuit of two
    /// such sockets (written to and read from memory).
    /// The connection must come out of the 30 moves intact. Figures go to the test output.
    /// </summary>
    [RootLabFact]
    public async Task Dump_and_restore_time_per_socket_with_empty_and_1_MB_queues()
    {
        await using var lab = await RepairLab.OneNodeAsync();
        foreach (var queued in new[] { 0, 1 << 20 })
        {
            // Large buffers on both ends, so that about 1 MB can wait in each queue, and a
            // large share of the send queue is in flight (limited by the initial cwnd).
            var (peerSocket, subjectSocket, listener) = NetworkNamespace.Run(lab.Old, () => ConnectInPlace(Family.V4, subjectBuffers: 4 << 20, peerReceiveBuffer: 4 << 20));
            using var listening = listener;
            var peer = new PatternStream("peer", peerSocket, 1, 2) { Reading = false };
            var subject = new PatternStream("subject", subjectSocket, 2, 1) { Reading = false };
            var (local, remote) = ((IPEndPoint)subjectSocket.LocalEndPoint!, (IPEndPoint)subjectSocket.RemoteEndPoint!);
            if (queued > 0)
            {
                Fill(peer, queued);
                await lab.GuardAsync(lab.Old, add: true, local, remote, outbound: false);
                Fill(subject, queued);
            }

            await lab.GuardAsync(lab.Old, add: true, local, remote);
            TcpRepair.EnterRepair(subjectSocket);
            var dump = new List<double>();
            var close = new List<double>();
            var restore = new List<double>();
            // On a thread in the namespace, where the restored sockets must be made. Each
            // restore is still in repair mode, so the next dump sees its queues without the
            // unsent bytes, which only the first restore hands back: they are carried along.
            var (current, first, image, unsent) = NetworkNamespace.Run(lab.New, () =>
            {
                var socket = subjectSocket;
                TcpSocketImage? firstImage = null;
                TcpSocketImage last = null!;
                ReadOnlyMemory<byte> carried = default;
                for (var i = 0; i < 30; i++)
                {
                    var start = Stopwatch.GetTimestamp();
                    last = TcpRepair.Dump(socket);
                    var dumped = Stopwatch.GetTimestamp();
                    TcpRepair.CloseSilently(socket);
                    var closed = Stopwatch.GetTimestamp();
                    socket = TcpRepair.Restore(last, out var unsentNow);
                    var restored = Stopwatch.GetTimestamp();
                    dump.Add(Stopwatch.GetElapsedTime(start, dumped).TotalMicroseconds);
                    close.Add(Stopwatch.GetElapsedTime(dumped, closed).TotalMicroseconds);
                    restore.Add(Stopwatch.GetElapsedTime(closed, restored).TotalMicroseconds);
                    firstImage ??= last;
                    carried = unsentNow.IsEmpty ? carried : unsentNow;
                }

                return (socket, firstImage!, last, carried);
            });

            var circuit = CircuitImageFormatTests.Sample(first, first) with { ToUpstream = new byte[64 * 1024], ToClient = new byte[64 * 1024] };
            var format = MeasureFormat(circuit);
            output.WriteLine(
                $"queues: receive {first.ReceiveQueue.Length} B, send {first.SendQueue.Length} B ({first.UnsentLength} unsent); 30 moves, median / max in µs: " +
                $"dump {Median(dump):0} / {dump.Max():0}, silent close {Median(close):0} / {close.Max():0}, restore {Median(restore):0} / {restore.Max():0}; " +
                $"a circuit image of two such sockets ({format.Bytes} B): write {format.WriteMicros:0} µs, read {format.ReadMicros:0} µs");
            if (queued > 0)
            {
                Assert.True(first.ReceiveQueue.Length > queued / 2 && first.SendQueue.Length > queued / 2 && first.SentLength > queued / 4,
                    $"queues of {first.ReceiveQueue.Length} and {first.SendQueue.Length} bytes ({first.SentLength} sent)");
            }

            TcpRepair.LeaveRepair(current, windowProbe: false);
            await lab.GuardAsync(lab.New, add: false, local, remote);
            TcpRepair.SendWindowProbe(current);
            subject.Socket = current;
            subject.WriteAgain(unsent);
            await FinishAsync(lab, peer, subject);
        }
    }

    /// <summary>The socket under test is accepted on one node (its listener stays open) and restored there.</summary>
    private async Task InPlaceAsync(Family family, Scenario scenario)
    {
        await using var lab = await RepairLab.OneNodeAsync();
        var (peerSocket, subjectSocket, listener) = NetworkNamespace.Run(lab.Old, () => ConnectInPlace(family));
        using var listening = listener; // repair mode must bind next to it
        // The peer's reader is stalled and the subject does not read: the queues fill.
        var peer = new PatternStream("peer", peerSocket, 1, 2) { Reading = false };
        var subject = new PatternStream("subject", subjectSocket, 2, 1) { Reading = false };
        var (local, remote) = ((IPEndPoint)subjectSocket.LocalEndPoint!, (IPEndPoint)subjectSocket.RemoteEndPoint!);
        switch (scenario)
        {
            case Scenario.Established:
                Fill(peer, 4 << 20);
                // ACKs to the subject are dropped: what it sends stays unacknowledged, and once
                // the peer's window is used up the rest stays unsent.
                await lab.GuardAsync(lab.Old, add: true, local, remote, outbound: false);
                Fill(subject, 4 << 20);
                break;
            case Scenario.CloseWait:
                peer.SendLimit = 32 * 1024;
                peer.ShutdownAtLimit = true;
                Fill(peer, peer.SendLimit);
                await AwaitStateAsync(subjectSocket, KernelTcpState.CloseWait);
                await lab.GuardAsync(lab.Old, add: true, local, remote, outbound: false);
                Fill(subject, 4 << 20);
                break;
            case Scenario.FinWait1Sent:
                Fill(peer, 32 * 1024);
                await lab.GuardAsync(lab.Old, add: true, local, remote, outbound: false);
                subject.SendLimit = 20_000; // within the peer's window: all of it and the FIN leave
                subject.ShutdownAtLimit = true;
                Fill(subject, subject.SendLimit);
                await Eventually.Holds(() => SocketTuner.ReadTcpInfo(subjectSocket)?.NotSentBytes == 0, "the subject's last bytes and FIN to leave");
                break;
            case Scenario.FinWait1Unsent:
                Fill(peer, 32 * 1024);
                await lab.GuardAsync(lab.Old, add: true, local, remote, outbound: false);
                Fill(subject, 4 << 20);
                subject.SendLimit = subject.Sent;
                subject.ShutdownAtLimit = true;
                Fill(subject, subject.SendLimit);
                break;
            case Scenario.FinWait2:
                peer.SendLimit = 0;
                subject.SendLimit = 20_000;
                subject.ShutdownAtLimit = true;
                peer.Reading = true;
                PatternStream.Pump([peer, subject], () => peer.Eof, Limit);
                await AwaitStateAsync(subjectSocket, KernelTcpState.FinWait2);
                peer.Reading = false;
                Fill(peer, 32 * 1024);
                await Eventually.Holds(() => subjectSocket.Available == peer.Sent, "the peer's bytes to be queued at the subject",
                    state: () => $"{subjectSocket.Available} queued; {peer}");
                break;
        }

        await lab.GuardAsync(lab.Old, add: true, local, remote);
        var (image, restored, unsent) = await HandOverAsync(lab, subjectSocket, scenario);
        switch (scenario)
        {
            case Scenario.Established or Scenario.CloseWait or Scenario.FinWait1Unsent:
                Assert.True(image.ReceiveQueue.Length > 0 && image.SentLength > 0 && image.UnsentLength > 0,
                    $"every queue should hold bytes: receive {image.ReceiveQueue.Length}, sent {image.SentLength}, unsent {image.UnsentLength}");
                break;
            case Scenario.FinWait1Sent:
                Assert.Equal((20_000, 0), (image.SentLength, image.UnsentLength));
                break;
            case Scenario.FinWait2:
                Assert.Equal((32 * 1024, 0), (image.ReceiveQueue.Length, image.SendQueue.Length));
                break;
        }

        await ResumeAsync(lab, peer, subject, image, restored, unsent);
    }

    /// <summary>
    /// The socket under test connects from the address under test on n1 to a peer on another
    /// namespace; both ends stream (paced) while it is frozen, dumped, closed, its address
    /// moved to n2, restored there and resumed.
    /// </summary>
    private async Task MoveAsync(Family family, Scenario scenario)
    {
        await using var lab = await RepairLab.TwoNodesAsync();
        var v6 = family == Family.V6;
        var (peerAddress, address) = v6 ? (RepairLab.PeerV6, RepairLab.AddressV6) : (RepairLab.PeerV4, RepairLab.AddressV4);
        var (listener, serverEnd) = NetworkNamespace.Run(lab.Peer, () =>
        {
            var l = new Socket(peerAddress.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            l.Bind(new IPEndPoint(peerAddress, 0));
            l.Listen();
            return (l, (IPEndPoint)l.LocalEndPoint!);
        });
        using var listening = listener;
        var subjectSocket = NetworkNamespace.Run(lab.Old, () =>
        {
            var s = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            s.Bind(new IPEndPoint(address, 0));
            s.Connect(serverEnd);
            s.Blocking = false;
            return s;
        });
        var peerSocket = listener.Accept();
        peerSocket.Blocking = false;
        var (local, remote) = ((IPEndPoint)subjectSocket.LocalEndPoint!, (IPEndPoint)subjectSocket.RemoteEndPoint!);
        const long rate = 4 << 20;
        var peer = new PatternStream("peer", peerSocket, 1, 2) { Rate = rate };
        var subject = new PatternStream("subject", subjectSocket, 2, 1) { Rate = rate };
        switch (scenario)
        {
            case Scenario.CloseWait:
                // The subject does not read: the peer's last bytes and FIN wait in its queue.
                subject.Reading = false;
                peer.SendLimit = 48 * 1024;
                peer.ShutdownAtLimit = true;
                break;
            case Scenario.FinWait2:
                subject.SendLimit = 256 * 1024;
                subject.ShutdownAtLimit = true;
                break;
        }

        using var peerPump = new Pump(peer);
        using (new Pump(subject))
        {
            await Task.Delay(300);
            switch (scenario)
            {
                case Scenario.CloseWait:
                    await AwaitStateAsync(subjectSocket, KernelTcpState.CloseWait);
                    break;
                case Scenario.FinWait2:
                    await AwaitStateAsync(subjectSocket, KernelTcpState.FinWait2);
                    break;
            }

        }

        // The subject's pump is frozen; now the tuple is dropped on both nodes.
        await lab.GuardAsync(lab.Old, add: true, local, remote);
        var (image, restored, unsent) = await HandOverAsync(lab, subjectSocket, scenario);
        output.WriteLine($"moved at: subject sent {subject.Sent}, received {subject.Received}; peer sent {peer.Sent}, received {peer.Received}; " +
            $"image: receive {image.ReceiveQueue.Length} B, send {image.SendQueue.Length} B ({image.UnsentLength} unsent), {image.State}");
        Assert.True(subject.Sent > 0 && peer.Sent > 0, "both ends streamed before the move");
        peerPump.Dispose();
        await ResumeAsync(lab, peer, subject, image, restored, unsent, streamFor: TimeSpan.FromMilliseconds(300));
    }

    /// <summary>
    /// The handover of the socket under test, as the relay does it: guard both nodes (done by
    /// the caller on the old one), repair on, dump, silent close, address moved, restore on the
    /// new node, repair off without probe, guard lifted on the new node (the old one keeps it),
    /// the window probe, the half-close replayed.
    /// </summary>
    private async Task<(TcpSocketImage Image, Socket Restored, ReadOnlyMemory<byte> Unsent)> HandOverAsync(RepairLab lab, Socket old, Scenario scenario)
    {
        var (local, remote) = ((IPEndPoint)old.LocalEndPoint!, (IPEndPoint)old.RemoteEndPoint!);
        await lab.GuardAsync(lab.New, add: true, local, remote);
        var mss = SocketTuner.ReadTcpInfo(old)!.SendMss;
        TcpRepair.EnterRepair(old);
        var image = TcpRepair.Dump(old);
        TcpRepair.CloseSilently(old);
        output.WriteLine($"dumped {image.Tuple}: {image.State} {image.HalfClose}, receive {image.ReceiveQueue.Length} B, send {image.SendQueue.Length} B ({image.UnsentLength} unsent), MSS clamp {image.MaxSegment}");
        var (state, halfClose) = scenario switch
        {
            Scenario.Established => (KernelTcpState.Established, TcpHalfClose.None),
            Scenario.CloseWait => (KernelTcpState.CloseWait, TcpHalfClose.PeerFinReceived),
            Scenario.FinWait1Sent => (KernelTcpState.FinWait1, TcpHalfClose.FinSent),
            Scenario.FinWait1Unsent => (KernelTcpState.FinWait1, TcpHalfClose.FinUnsent),
            _ => (KernelTcpState.FinWait2, TcpHalfClose.FinSent | TcpHalfClose.FinAcknowledged),
        };
        Assert.Equal((state, halfClose), (image.State, image.HalfClose));
        Assert.Equal(local, image.Local);
        Assert.Equal(remote, image.Remote);

        await lab.MoveAddressAsync(RepairLab.Unmapped(local).Address);
        var (restored, unsent) = NetworkNamespace.Run(lab.New, () => (TcpRepair.Restore(image, out var u), u));
        Assert.Equal(local.AddressFamily, restored.AddressFamily);
        Assert.Equal(image.UnsentLength, unsent.Length);
        TcpRepair.LeaveRepair(restored, windowProbe: false);
        await lab.GuardAsync(lab.New, add: false, local, remote);
        TcpRepair.SendWindowProbe(restored);
        NetworkNamespace.Run(lab.New, () =>
        {
            TcpRepair.ReplayHalfClose(restored, image);
            return 0;
        });

        // Within a few milliseconds, not after a retransmission timeout (3 s for a socket
        // without an RTT sample): a FIN sent again draws the peer's ACK at once.
        var after = scenario switch
        {
            Scenario.CloseWait => KernelTcpState.CloseWait,
            Scenario.FinWait1Sent or Scenario.FinWait2 => KernelTcpState.FinWait2,
            _ => KernelTcpState.Established,
        };
        await AwaitStateAsync(restored, after, TimeSpan.FromMilliseconds(500));
        // The segment size comes back too (the user MSS set before connect, at most 32767,
        // less the timestamp option), and fits in half the peer's largest window as the
        // kernel keeps it: larger, it would never fit a window that size.
        var restoredMss = SocketTuner.ReadTcpInfo(restored)!.SendMss;
        output.WriteLine($"send MSS {mss} before, {restoredMss} restored; peer's largest window {image.Window.MaxWindow}");
        Assert.True(restoredMss + 12 + 13 >= Math.Min(mss, 32767), $"send MSS {mss} before the move, {restoredMss} after");
        Assert.True(image.Window.MaxWindow <= 1220 || restoredMss <= image.Window.MaxWindow / 2,
            $"send MSS {restoredMss} after the move, above half the peer's largest window {image.Window.MaxWindow}");
        return (image, restored, unsent);
    }

    /// <summary>Resumes the subject on the restored socket (its unsent bytes first), streams a while if asked, then closes both ends and checks everything.</summary>
    private async Task ResumeAsync(RepairLab lab, PatternStream peer, PatternStream subject, TcpSocketImage image, Socket restored,
        ReadOnlyMemory<byte> unsent, TimeSpan streamFor = default)
    {
        subject.Socket = restored;
        subject.WriteAgain(unsent);
        if (image.OwesFin)
        {
            subject.OweFin();
        }

        subject.Repace();
        peer.Repace();
        if (streamFor > TimeSpan.Zero)
        {
            using (new Pump(peer))
            using (new Pump(subject))
            {
                await Task.Delay(streamFor);
            }
        }

        await FinishAsync(lab, peer, subject);
    }

    /// <summary>Both ends read, send 256 KiB more unless shut down, shut down, and read to EOF; then the checks.</summary>
    private async Task FinishAsync(RepairLab lab, PatternStream peer, PatternStream subject)
    {
        foreach (var end in new[] { peer, subject })
        {
            end.Reading = true;
            end.Rate = 0;
            if (!end.Shut && !end.ShutdownAtLimit)
            {
                end.SendLimit = end.Sent + 256 * 1024;
                end.ShutdownAtLimit = true;
            }
        }

        try
        {
            PatternStream.Pump([peer, subject], () => peer.Done(expectShut: true) && subject.Done(expectShut: true), Limit);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // What each kernel thinks when the bytes stop: state, windows, timers, queues.
            throw new InvalidOperationException($"{e.Message}\npeer TCP_INFO: {SocketTuner.ReadTcpInfo(peer.Socket)}\nsubject TCP_INFO: {SocketTuner.ReadTcpInfo(subject.Socket)}", e);
        }

        output.WriteLine($"{peer}\n{subject}");
        Assert.Null(peer.Error);
        Assert.Null(subject.Error);
        Assert.Null(peer.BadAt);
        Assert.Null(subject.BadAt);
        Assert.Equal(subject.Sent, peer.Received);
        Assert.Equal(peer.Sent, subject.Received);
        Assert.True(peer.Eof && subject.Eof, "both ends read EOF");
        foreach (var ns in new[] { lab.Peer, lab.Old, lab.New }.Distinct())
        {
            Assert.Equal(0, await lab.ResetsAsync(ns));
        }

        peer.Socket.Dispose();
        subject.Socket.Dispose();
    }

    /// <summary>
    /// A connection on one node's loopback: the subject accepted on the address under test
    /// (its listener returned, to stay open), the peer with a small receive buffer (32 KiB) by
    /// default, so its window closes early. Both non-blocking.
    /// </summary>
    private static (Socket Peer, Socket Subject, Socket Listener) ConnectInPlace(Family family, int subjectBuffers = 0, int peerReceiveBuffer = 32 * 1024)
    {
        var (peerAddress, address) = family == Family.V6 ? (RepairLab.PeerV6, RepairLab.AddressV6) : (RepairLab.PeerV4, RepairLab.AddressV4);
        var listener = family switch
        {
            Family.V4 => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp),
            _ => new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { DualMode = family == Family.V4Mapped },
        };
        if (subjectBuffers > 0)
        {
            // Accepted sockets inherit them; FORCE, past net.core.[rw]mem_max (root).
            listener.SetRawSocketOption(SysSocket.SOL_SOCKET, SysSocket.SO_RCVBUFFORCE, BitConverter.GetBytes(subjectBuffers));
            listener.SetRawSocketOption(SysSocket.SOL_SOCKET, SysSocket.SO_SNDBUFFORCE, BitConverter.GetBytes(subjectBuffers));
        }

        listener.Bind(new IPEndPoint(family == Family.V4Mapped ? address.MapToIPv6() : address, 0));
        listener.Listen();
        var peer = new Socket(peerAddress.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        // Before connect: the buffer decides the window scale the handshake offers.
        peer.SetRawSocketOption(SysSocket.SOL_SOCKET, SysSocket.SO_RCVBUFFORCE, BitConverter.GetBytes(peerReceiveBuffer));
        peer.Bind(new IPEndPoint(peerAddress, 0));
        peer.Connect(new IPEndPoint(address, ((IPEndPoint)listener.LocalEndPoint!).Port));
        var subject = listener.Accept();
        subject.NoDelay = true;
        peer.Blocking = false;
        subject.Blocking = false;
        return (peer, subject, listener);
    }

    /// <summary>
    /// Steps <paramref name="stream"/> until it has handed <paramref name="limit"/> bytes to the
    /// kernel (and shut down, if asked) or its attempts have moved nothing for 100 ms: the
    /// idle time counts only from failed attempts, so a test thread descheduled on a busy
    /// machine does not stop the filling early.
    /// </summary>
    private static void Fill(PatternStream stream, long limit)
    {
        stream.SendLimit = Math.Max(stream.SendLimit == long.MaxValue ? 0 : stream.SendLimit, limit);
        var total = Stopwatch.StartNew();
        Stopwatch? idle = null;
        while (stream.Sent < limit || (stream.ShutdownAtLimit && !stream.Shut))
        {
            Assert.True(total.Elapsed < Limit, $"filling: {stream}");
            if (stream.Step())
            {
                idle = null;
                continue;
            }

            idle ??= Stopwatch.StartNew();
            if (idle.ElapsedMilliseconds >= 100)
            {
                break;
            }

            Thread.Sleep(1);
        }

        Assert.Null(stream.Error);
    }

    private static async Task AwaitStateAsync(Socket socket, KernelTcpState state, TimeSpan? within = null)
    {
        KernelTcpState? last = null;
        await Eventually.Holds(() => (last = SocketTuner.ReadTcpInfo(socket)?.State) == state, $"state {state}", within, () => $"state {last}",
            TimeSpan.FromMilliseconds(5));
    }

    private static (int Bytes, double WriteMicros, double ReadMicros) MeasureFormat(CircuitImage circuit)
    {
        var write = new List<double>();
        var read = new List<double>();
        using var stream = new MemoryStream(8 << 20); // the format's cost, not the stream's growth
        for (var i = 0; i < 10; i++)
        {
            stream.SetLength(0);
            var start = Stopwatch.GetTimestamp();
            CircuitImageFormat.Write(stream, circuit);
            var written = Stopwatch.GetTimestamp();
            stream.Position = 0;
            CircuitImageFormat.Read(stream);
            var done = Stopwatch.GetTimestamp();
            write.Add(Stopwatch.GetElapsedTime(start, written).TotalMicroseconds);
            read.Add(Stopwatch.GetElapsedTime(written, done).TotalMicroseconds);
        }

        return ((int)stream.Length, Median(write), Median(read));
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }

    /// <summary>Drives one stream on a thread of its own until disposed (a frozen pump).</summary>
    private sealed class Pump : IDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Thread _thread;
        private Exception? _failure;

        public Pump(PatternStream stream)
        {
            _thread = new Thread(() =>
            {
                try
                {
                    PatternStream.Pump([stream], () => false, Limit, _stop.Token);
                }
                catch (Exception e)
                {
                    _failure = e;
                }
            })
            { IsBackground = true, Name = "pump " + stream.Name };
            _thread.Start();
        }

        public void Dispose()
        {
            if (_stop.IsCancellationRequested)
            {
                return;
            }

            _stop.Cancel();
            Assert.True(_thread.Join(TimeSpan.FromSeconds(10)), "the pump did not stop");
            _stop.Dispose();
            if (_failure is not null)
            {
                throw new InvalidOperationException("pump failed: " + _failure.Message, _failure);
            }
        }
    }
}
