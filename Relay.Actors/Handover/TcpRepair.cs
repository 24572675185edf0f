using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Relay.Actors.Native;
using Relay.Actors.Sockets;
using Relay.Actors.Tuning;

namespace Relay.Actors.Handover;

/// <summary>
/// INTERNAL API. Moves a live TCP connection (IPv4, IPv6, or IPv4-mapped on a dual-stack
/// socket) between hosts with Linux TCP_REPAIR, as CRIU's libsoccr does: <see cref="Dump"/>
/// reads it from a frozen socket, <see cref="Restore"/> rebuilds it on another node without a
/// handshake, and the peer sees one connection that paused. Needs CAP_NET_ADMIN (repair mode)
/// and, for a connection whose peer had closed its side, CAP_NET_RAW (<see cref="ReplayHalfClose"/>).
/// <para>
/// The handover around it: the 4-tuple is dropped both ways first (a socket in repair mode
/// still accepts and acknowledges data, which a dump would then lose), then
/// <see cref="EnterRepair"/>, <see cref="Dump"/>, and <see cref="CloseSilently"/> once the
/// target has the connection. On the target: <see cref="Restore"/> while its own drop holds,
/// <see cref="LeaveRepair"/> without the window probe (the drop would eat it), lift the drop,
/// <see cref="SendWindowProbe"/>, <see cref="ReplayHalfClose"/> (in this order: the kernel
/// probes only an established socket), then write the unsent bytes, and shut down after them
/// if <see cref="TcpSocketImage.OwesFin"/>.
/// </para>
/// <para>
/// What does not move: the congestion state (a restored socket starts from the initial window
/// and, until its first RTT sample, a 3 s retransmission timeout), buffer autotuning (the
/// restored buffers are forced), the out-of-order queue (the peer sends it again), and
/// options the relay set (keepalive, congestion control: apply the route's again). Sockets
/// whose local address is not the node's own (TPROXY routes) are not handled: the restore
/// binds without IP_TRANSPARENT, and the replayed FIN is routed to the local address.
/// </para>
/// Every failure is a <see cref="TcpRepairException"/> naming the step and the 4-tuple.
/// </summary>
internal static unsafe class TcpRepair
{
    // Three tries: the queues of a guarded socket do not change, so a second mismatch means
    // packets still reach it, and more tries would not help.
    private const int DumpAttempts = 3;

    // In repair mode the kernel puts each send of the receive queue into one skb of that size
    // and may refuse a large one (ENOMEM); CRIU halves the chunk down to this floor.
    private const int SmallestQueueChunk = 1024;

    // setsockopt(TCP_MAXSEG) accepts TCP_MIN_MSS..MAX_TCP_WINDOW; above TCP_MSS_DESIRED the
    // kernel bounds the MSS to half the largest window (include/net/tcp.h).
    private const int MinUserMss = 88;
    private const int MaxUserMss = 32767;
    private const uint DesiredMss = 1220;

    /// <summary>TCP_REPAIR on: the socket stops sending anything (data, ACKs, retransmissions, timers' segments) until it leaves.</summary>
    public static void EnterRepair(Socket socket) => SetRepair(socket, Tcp.TCP_REPAIR_ON, "enter repair mode");

    /// <summary>
    /// TCP_REPAIR off. With <paramref name="windowProbe"/> the kernel sends a window probe at
    /// once, which makes the peer announce its window (the restored socket's view of a zero
    /// window is stale); without it (TCP_REPAIR_OFF_NO_WP) nothing is sent, for a tuple still
    /// dropped, whose probe would be lost: send it later with <see cref="SendWindowProbe"/>.
    /// </summary>
    public static void LeaveRepair(Socket socket, bool windowProbe) =>
        SetRepair(socket, windowProbe ? Tcp.TCP_REPAIR_OFF : Tcp.TCP_REPAIR_OFF_NO_WP, windowProbe ? "leave repair mode" : "leave repair mode (no window probe)");

    /// <summary>
    /// Repair on and off again: the window probe a <see cref="LeaveRepair"/> without probe held
    /// back, once the tuple is no longer dropped. The probe (an old sequence number) makes the
    /// peer acknowledge what it has, so the restored socket learns its window and frees what
    /// was delivered, instead of waiting out a retransmission timeout: 3 s for a socket without
    /// an RTT sample (RFC 6298 5.7, measured TCP_INFO rto on restored sockets). The kernel
    /// sends it only for an established socket, which a restored one is until
    /// <see cref="ReplayHalfClose"/>.
    /// </summary>
    public static void SendWindowProbe(Socket socket)
    {
        SetRepair(socket, Tcp.TCP_REPAIR_ON, "window probe (repair on)");
        SetRepair(socket, Tcp.TCP_REPAIR_OFF, "window probe (repair off)");
    }

    /// <summary>
    /// Closes the socket in repair mode (entering it if needed): the kernel drops the
    /// connection with neither FIN nor RST, so the peer goes on with the restored copy. A
    /// segment for the tuple arriving after the close would draw a reset from this node's
    /// stack: keep it dropped for a while (HANDOVER.md: an nft set element with ~60 s timeout).
    /// If repair mode cannot be entered it throws and leaves the socket open: a plain close
    /// would send a FIN or RST on a connection that lives on elsewhere.
    /// </summary>
    public static void CloseSilently(Socket socket)
    {
        if (!socket.SafeHandle.IsClosed)
        {
            SetRepair(socket, Tcp.TCP_REPAIR_ON, "close silently (repair on)");
        }

        CircuitSockets.Close(socket);
    }

    /// <summary>
    /// Reads the connection: TCP_INFO, the queue sizes (SIOCOUTQ, SIOCOUTQNSD, SIOCINQ),
    /// TCP_MAXSEG, TCP_TIMESTAMP, TCP_REPAIR_WINDOW, and both queues' bytes by MSG_PEEK (asking
    /// for one byte more than the size, to prove the queue holds exactly that many). If a
    /// queue's size changed meanwhile it reads again, and fails after three tries.
    /// Precondition: the socket is in repair mode and its 4-tuple is dropped both ways.
    /// Established, close-wait, fin-wait-1 and fin-wait-2 connections can be dumped; a socket
    /// in another state fails with its state named (it finishes on this node).
    /// </summary>
    public static TcpSocketImage Dump(Socket socket)
    {
        var handle = socket.SafeHandle;
        var added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            return Dump((int)handle.DangerousGetHandle());
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// Rebuilds <paramref name="image"/> as a new non-blocking socket (wrapped as the circuit
    /// sockets are, by <see cref="CircuitSockets.WrapConnected"/>) bound to its local address,
    /// which must exist on this node (repair mode binds next to a listener on the same port):
    /// forced buffers large enough for the queues, the MSS, both queue sequences, connect (no
    /// SYN), the negotiated options, the timestamp clock, the receive queue and the sent part of
    /// the send queue (queued as sent: the kernel retransmits what the peer lacks), the windows,
    /// TCP_NODELAY. The socket is established whatever the image's state: the FINs come back
    /// with <see cref="ReplayHalfClose"/>. Returns it still in repair mode; the caller leaves it
    /// when the tuple may carry packets. <paramref name="unsent"/> is the part of the send queue
    /// never sent, for the caller to write once out of repair mode, ahead of any bytes of its
    /// own. On failure the half-built socket is closed without a packet.
    /// </summary>
    /// <remarks>SO_SNDBUFFORCE/SO_RCVBUFFORCE turn buffer autotuning off for the socket.</remarks>
    public static Socket Restore(TcpSocketImage image, out ReadOnlyMemory<byte> unsent)
    {
        var step = new Step("restore", image.Tuple);
        if (image.Problem() is { } problem)
        {
            throw new TcpRepairException($"restore {problem}", 0);
        }

        var domain = image.Local.AddressFamily == AddressFamily.InterNetworkV6 ? SysSocket.AF_INET6 : SysSocket.AF_INET;
        var fd = SysSocket.Socket(domain, SysSocket.SOCK_STREAM | SysSocket.SOCK_NONBLOCK | SysSocket.SOCK_CLOEXEC, Inet.IPPROTO_TCP);
        if (fd < 0)
        {
            throw step.Fail("socket", Marshal.GetLastPInvokeError());
        }

        try
        {
            RestoreInto(fd, image, step);
        }
        catch
        {
            Unistd.Close(fd); // in repair mode, or never connected: no packet either way
            throw;
        }

        unsent = image.SendQueue[image.SentLength..];
        return CircuitSockets.WrapConnected(fd, image.Remote);
    }

    /// <summary>
    /// Puts back the FINs of a half-closed connection on its restored socket, after
    /// <see cref="LeaveRepair"/>, the drop lifted and <see cref="SendWindowProbe"/>; nothing to
    /// do, and no system call, for an established image.
    /// <list type="bullet">
    /// <item>Our FIN had left (fin-wait-1, fin-wait-2): shutdown(SHUT_WR) sends it again. The
    /// peer has it, or has it now; a duplicate FIN draws its acknowledgement at once (a
    /// retransmission forces an immediate ACK), which takes the socket to fin-wait-2.</item>
    /// <item>Our FIN had not left and no unsent bytes precede it: the same shutdown. With
    /// unsent bytes, the caller shuts down after writing them (<see cref="TcpSocketImage.OwesFin"/>).</item>
    /// <item>The peer's FIN had come (close-wait): TCP_REPAIR cannot queue a FIN, so it is
    /// replayed as the peer sent it, in a packet from a raw socket (CAP_NET_RAW) that loops
    /// back to the restored socket, as CRIU's soccr (send_fin) does. The relay then reads the
    /// queued bytes and EOF. The socket acknowledges the FIN again; the peer already has that
    /// ACK. The tuple must no longer be dropped on this node, and the call must run on a
    /// thread in the socket's network namespace (the raw socket is made in the caller's).</item>
    /// </list>
    /// </summary>
    public static void ReplayHalfClose(Socket socket, TcpSocketImage image)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if ((image.HalfClose & TcpHalfClose.FinSent) != 0 || (image.HalfClose == TcpHalfClose.FinUnsent && image.UnsentLength == 0))
        {
            if (RawSocket.ShutdownSend(socket) is not SocketError.Success and var error)
            {
                throw new Step("replay half-close", image.Tuple).Fail($"shutdown(SHUT_WR) to send our FIN again: {error}");
            }

            return;
        }

        if ((image.HalfClose & TcpHalfClose.PeerFinReceived) == 0)
        {
            return;
        }

        var step = new Step("replay half-close", image.Tuple);

        // The peer's window as this socket knows it: no larger, so the segment cannot widen it.
        var scale = (image.Options & Tcp.TCPI_OPT_WSCALE) != 0 ? image.SendWindowScale : 0;
        var window = (ushort)Math.Min(image.Window.SndWnd >> scale, ushort.MaxValue);
        // A dual-stack socket's IPv4 peer: the packet on the wire is IPv4.
        var from = Unmapped(image.Remote);
        var to = Unmapped(image.Local);
        Span<byte> packet = stackalloc byte[PeerSegment.MaxBytes];
        var length = PeerSegment.Write(packet, from, to, image.ReceiveSequence,
            image.SendSequence - (uint)image.SendQueue.Length, // snd_una: acknowledges nothing new
            PeerSegment.Fin | PeerSegment.Ack, window);

        var family = to.AddressFamily == AddressFamily.InterNetworkV6 ? SysSocket.AF_INET6 : SysSocket.AF_INET;
        var raw = SysSocket.Socket(family, SysSocket.SOCK_RAW | SysSocket.SOCK_CLOEXEC, Inet.IPPROTO_RAW);
        if (raw < 0)
        {
            throw step.Fail("socket(SOCK_RAW) for the peer's FIN", Marshal.GetLastPInvokeError());
        }

        using var rawHandle = new FileDescriptor(raw);
        Span<byte> address = stackalloc byte[CircuitSockets.MaxAddressLength];
        // A raw IPv6 socket takes the protocol from the port field: 0 means its own.
        var addressLength = CircuitSockets.WriteAddress(new IPEndPoint(to.Address, 0), address);
        fixed (byte* p = packet)
        fixed (byte* a = address)
        {
            while (SysSocket.SendTo(raw, p, length, 0, a, (uint)addressLength) < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno != Errno.EINTR)
                {
                    throw step.Fail("send the peer's FIN", errno);
                }
            }
        }
    }

    /// <summary>
    /// The dumped window as the kernel takes it back (tcp_repair_set_window refuses, EINVAL,
    /// an snd_wl1 past rcv_nxt + rcv_wnd and a max_window under snd_wnd). snd_wl1 is the
    /// sequence number of the peer's segment that last moved our send window; an out-of-order
    /// segment that arrived while our receive window was closed (a full-speed circuit whose
    /// relay was behind, on links that reorder) leaves it past that bound, and such a circuit's
    /// restore failed (7 of 1,000 in one handover of scenario B). Both only gate which later
    /// segment may update the send window: snd_wl1 = rcv_nxt lets the next in-window one do
    /// it, and max_window = snd_wnd is the window the peer did offer. rcv_wup is left as it
    /// is: past rcv_nxt it would mean the image lacks bytes this socket had taken.
    /// </summary>
    internal static TcpRepairWindow RestorableWindow(TcpRepairWindow window, uint receiveNext) =>
        window with
        {
            SndWl1 = (int)(window.SndWl1 - (receiveNext + window.RcvWnd)) > 0 ? receiveNext : window.SndWl1,
            MaxWindow = Math.Max(window.MaxWindow, window.SndWnd),
        };

    private static TcpSocketImage Dump(int fd)
    {
        var unnamed = new Step("dump", $"socket {fd}");
        var local = Name(fd, peer: false, unnamed);
        var remote = Name(fd, peer: true, unnamed);
        var step = new Step("dump", $"{local} -> {remote}");
        if (GetInt(fd, Inet.IPPROTO_TCP, Tcp.TCP_REPAIR, "getsockopt(TCP_REPAIR)", step) != Tcp.TCP_REPAIR_ON)
        {
            throw step.Fail("the socket is not in repair mode (EnterRepair first)");
        }

        Span<byte> info = stackalloc byte[8]; // tcpi_state .. tcpi_snd_wscale:4, tcpi_rcv_wscale:4
        for (var attempt = 0; attempt < DumpAttempts; attempt++)
        {
            GetOption(fd, Inet.IPPROTO_TCP, Tcp.TCP_INFO, info, "getsockopt(TCP_INFO)", step);
            var state = (KernelTcpState)info[0];
            var options = info[5];

            var outq = QueueSize(fd, Ioctl.SIOCOUTQ, "ioctl(SIOCOUTQ)", step);
            var notSent = QueueSize(fd, Ioctl.SIOCOUTQNSD, "ioctl(SIOCOUTQNSD)", step);
            var inq = QueueSize(fd, Ioctl.SIOCINQ, "ioctl(SIOCINQ)", step);
            var halfClose = state switch
            {
                KernelTcpState.Established => TcpHalfClose.None,
                // SIOCINQ leaves the FIN out; TCP_QUEUE_SEQ (rcv_nxt) counts it.
                KernelTcpState.CloseWait => TcpHalfClose.PeerFinReceived,
                // The FIN is the send queue's last sequence number: unsent if anything is.
                KernelTcpState.FinWait1 => notSent > 0 ? TcpHalfClose.FinUnsent : TcpHalfClose.FinSent,
                KernelTcpState.FinWait2 => TcpHalfClose.FinSent | TcpHalfClose.FinAcknowledged,
                _ => throw step.Fail($"state {state} cannot be moved (only established, close-wait, fin-wait-1 and fin-wait-2 can): let it finish on this node"),
            };
            var ourFin = state is KernelTcpState.FinWait1 or KernelTcpState.FinWait2;
            // SIOCOUTQ and SIOCOUTQNSD count our FIN while it is unacknowledged or unsent.
            var sendBytes = ourFin && outq > 0 ? outq - 1 : outq;
            var unsentBytes = ourFin && notSent > 0 ? notSent - 1 : notSent;

            var maxSegment = GetInt(fd, Inet.IPPROTO_TCP, Tcp.TCP_MAXSEG, "getsockopt(TCP_MAXSEG)", step);
            var timestamp = (options & Tcp.TCPI_OPT_TIMESTAMPS) != 0
                ? (uint)GetInt(fd, Inet.IPPROTO_TCP, Tcp.TCP_TIMESTAMP, "getsockopt(TCP_TIMESTAMP)", step)
                : 0;
            Tcp.RepairWindow window;
            GetOption(fd, Inet.IPPROTO_TCP, Tcp.TCP_REPAIR_WINDOW, new Span<byte>(&window, sizeof(Tcp.RepairWindow)), "getsockopt(TCP_REPAIR_WINDOW)", step);
            var noDelay = GetInt(fd, Inet.IPPROTO_TCP, Tcp.TCP_NODELAY, "getsockopt(TCP_NODELAY)", step) != 0;
            var sendBuffer = GetInt(fd, SysSocket.SOL_SOCKET, SysSocket.SO_SNDBUF, "getsockopt(SO_SNDBUF)", step);
            var receiveBuffer = GetInt(fd, SysSocket.SOL_SOCKET, SysSocket.SO_RCVBUF, "getsockopt(SO_RCVBUF)", step);

            // One array for both queues; each peek asks for one byte more than its queue holds,
            // and that byte (which must not come) falls where the next queue starts.
            // Uninitialized: the peeks fill every byte that is kept.
            byte[] bytes = inq + sendBytes == 0 ? [] : GC.AllocateUninitializedArray<byte>(inq + sendBytes + 1);
            var receiveSeq = PeekQueue(fd, Tcp.TCP_RECV_QUEUE, bytes, 0, inq, "receive", step);
            var sendSeq = PeekQueue(fd, Tcp.TCP_SEND_QUEUE, bytes, inq, sendBytes, "send", step);
            SetInt(fd, Inet.IPPROTO_TCP, Tcp.TCP_REPAIR_QUEUE, Tcp.TCP_NO_QUEUE, "setsockopt(TCP_REPAIR_QUEUE, none)", step);
            if (QueueSize(fd, Ioctl.SIOCOUTQ, "ioctl(SIOCOUTQ)", step) != outq || QueueSize(fd, Ioctl.SIOCINQ, "ioctl(SIOCINQ)", step) != inq)
            {
                continue;
            }

            var repairWindow = new TcpRepairWindow(window.SndWl1, window.SndWnd, window.MaxWindow, window.RcvWnd, window.RcvWup);
            if (halfClose == TcpHalfClose.PeerFinReceived)
            {
                // The FIN is replayed after the restore and will advance rcv_nxt again: until
                // then the window must end where it ended (rcv_wup may not pass rcv_nxt).
                receiveSeq--;
                repairWindow = repairWindow with { RcvWup = repairWindow.RcvWup - 1, RcvWnd = repairWindow.RcvWnd + 1 };
            }

            if (ourFin)
            {
                sendSeq--;
            }

            return new TcpSocketImage
            {
                Local = local,
                Remote = remote,
                State = state,
                HalfClose = halfClose,
                SendSequence = sendSeq,
                ReceiveSequence = receiveSeq,
                SendQueue = bytes.AsMemory(inq, sendBytes),
                UnsentLength = unsentBytes,
                ReceiveQueue = bytes.AsMemory(0, inq),
                MaxSegment = maxSegment,
                Options = options,
                SendWindowScale = (byte)(info[6] & 0x0F),
                ReceiveWindowScale = (byte)(info[6] >> 4),
                Timestamp = timestamp,
                Window = repairWindow,
                NoDelay = noDelay,
                SendBuffer = sendBuffer,
                ReceiveBuffer = receiveBuffer,
            };
        }

        throw step.Fail($"the queues changed in each of {DumpAttempts} dumps: packets still reach the socket (is its 4-tuple dropped?)");
    }

    private static void RestoreInto(int fd, TcpSocketImage image, Step step)
    {
        SetInt(fd, Inet.IPPROTO_TCP, Tcp.TCP_REPAIR, Tcp.TCP_REPAIR_ON, "setsockopt(TCP_REPAIR)", step);
        // The kernel doubles the value it is given, and getsockopt reported the doubled one.
        // Twice the queue as a floor: restored skbs may carry more overhead than the originals.
        SetInt(fd, SysSocket.SOL_SOCKET, SysSocket.SO_SNDBUFFORCE, ForcedBuffer(image.SendBuffer, image.SendQueue.Length), "setsockopt(SO_SNDBUFFORCE)", step);
        SetInt(fd, SysSocket.SOL_SOCKET, SysSocket.SO_RCVBUFFORCE, ForcedBuffer(image.ReceiveBuffer, image.ReceiveQueue.Length), "setsockopt(SO_RCVBUFFORCE)", step);

        Span<byte> address = stackalloc byte[CircuitSockets.MaxAddressLength];
        var length = CircuitSockets.WriteAddress(image.Local, address);
        fixed (byte* a = address)
        {
            // Repair mode sets SK_FORCE_REUSE: the bind succeeds next to a listener on the port.
            if (SysSocket.Bind(fd, a, (uint)length) < 0)
            {
                throw step.Fail($"bind({image.Local})", Marshal.GetLastPInvokeError());
            }
        }

        var userMss = UserMss(image);
        if (userMss >= MinUserMss)
        {
            SetInt(fd, Inet.IPPROTO_TCP, Tcp.TCP_MAXSEG, userMss, "setsockopt(TCP_MAXSEG)", step);
        }

        // The sequences are settable only before connect; they are where each queue starts.
        SetInt(fd, Inet.IPPROTO_TCP, Tcp.TCP_REPAIR_QUEUE, Tcp.TCP_RECV_QUEUE, "setsockopt(TCP_REPAIR_QUEUE, receive)", step);
        SetInt(fd, Inet.IPPROTO_TCP, Tcp.TCP_QUEUE_SEQ, (int)(image.ReceiveSequence - (uint)image.ReceiveQueue.Length), "setsockopt(TCP_QUEUE_SEQ, receive)", step);
        SetInt(fd, Inet.IPPROTO_TCP, Tcp.TCP_REPAIR_QUEUE, Tcp.TCP_SEND_QUEUE, "setsockopt(TCP_REPAIR_QUEUE, send)", step);
        SetInt(fd, Inet.IPPROTO_TCP, Tcp.TCP_QUEUE_SEQ, (int)(image.SendSequence - (uint)image.SendQueue.Length), "setsockopt(TCP_QUEUE_SEQ, send)", step);

        length = CircuitSockets.WriteAddress(image.Remote, address);
        fixed (byte* a = address)
        {
            // In repair mode connect sends no SYN: the socket is established at once.
            if (SysSocket.Connect(fd, a, length) < 0)
            {
                throw step.Fail($"connect({image.Remote})", Marshal.GetLastPInvokeError());
            }
        }

        Span<Tcp.RepairOption> options = stackalloc Tcp.RepairOption[4];
        var count = 0;
        if ((image.Options & Tcp.TCPI_OPT_SACK) != 0)
        {
            options[count++] = new Tcp.RepairOption { Code = Tcp.TCPOPT_SACK_PERM };
        }

        if ((image.Options & Tcp.TCPI_OPT_WSCALE) != 0)
        {
            options[count++] = new Tcp.RepairOption { Code = Tcp.TCPOPT_WINDOW, Value = image.SendWindowScale | ((uint)image.ReceiveWindowScale << 16) };
        }

        if ((image.Options & Tcp.TCPI_OPT_TIMESTAMPS) != 0)
        {
            options[count++] = new Tcp.RepairOption { Code = Tcp.TCPOPT_TIMESTAMP };
        }

        options[count++] = new Tcp.RepairOption { Code = Tcp.TCPOPT_MAXSEG, Value = (uint)image.MaxSegment };
        SetOption(fd, Inet.IPPROTO_TCP, Tcp.TCP_REPAIR_OPTIONS, MemoryMarshal.AsBytes(options[..count]), "setsockopt(TCP_REPAIR_OPTIONS)", step);
        if ((image.Options & Tcp.TCPI_OPT_TIMESTAMPS) != 0)
        {
            // Without the old clock the peer's PAWS check drops every new segment as old.
            SetInt(fd, Inet.IPPROTO_TCP, Tcp.TCP_TIMESTAMP, (int)image.Timestamp, "setsockopt(TCP_TIMESTAMP)", step);
        }

        if (!image.ReceiveQueue.IsEmpty)
        {
            SetInt(fd, Inet.IPPROTO_TCP, Tcp.TCP_REPAIR_QUEUE, Tcp.TCP_RECV_QUEUE, "setsockopt(TCP_REPAIR_QUEUE, receive)", step);
            QueueBytes(fd, image.ReceiveQueue.Span, "receive", step);
        }

        if (image.SentLength > 0)
        {
            SetInt(fd, Inet.IPPROTO_TCP, Tcp.TCP_REPAIR_QUEUE, Tcp.TCP_SEND_QUEUE, "setsockopt(TCP_REPAIR_QUEUE, send)", step);
            QueueBytes(fd, image.SendQueue.Span[..image.SentLength], "send", step);
        }

        SetInt(fd, Inet.IPPROTO_TCP, Tcp.TCP_REPAIR_QUEUE, Tcp.TCP_NO_QUEUE, "setsockopt(TCP_REPAIR_QUEUE, none)", step);
        // Checked against rcv_nxt, so after the receive queue.
        var restorable = RestorableWindow(image.Window, image.ReceiveSequence);
        var window = new Tcp.RepairWindow
        {
            SndWl1 = restorable.SndWl1,
            SndWnd = restorable.SndWnd,
            MaxWindow = restorable.MaxWindow,
            RcvWnd = restorable.RcvWnd,
            RcvWup = restorable.RcvWup,
        };
        SetOption(fd, Inet.IPPROTO_TCP, Tcp.TCP_REPAIR_WINDOW, new ReadOnlySpan<byte>(&window, sizeof(Tcp.RepairWindow)), "setsockopt(TCP_REPAIR_WINDOW)", step);

        if (image.NoDelay)
        {
            SetInt(fd, Inet.IPPROTO_TCP, Tcp.TCP_NODELAY, 1, "setsockopt(TCP_NODELAY)", step);
        }
    }

    /// <summary>
    /// The user MSS to set before connect. The segment size the socket sends (mss_cache) is
    /// computed at connect, from this, and not again until the path MTU or the peer's largest
    /// window changes: the clamp TCP_REPAIR_OPTIONS sets afterwards never reaches it, and
    /// without a user MSS the socket sent 524-byte segments for good (measured: 524 instead of
    /// 32768 on loopback). It is also kept within half the peer's largest window, as the kernel
    /// keeps it (tcp_bound_to_half_wnd), which it cannot do at connect, before the window is
    /// restored: a segment larger than the window never fits, and the socket then trickles
    /// window-sized probes every RTO (measured: 1.4 MB stuck behind a 32 KB window).
    /// </summary>
    private static int UserMss(TcpSocketImage image)
    {
        var mss = Math.Min(image.MaxSegment, MaxUserMss);
        var largestWindow = image.Window.MaxWindow;
        if (largestWindow > 0)
        {
            var cutoff = largestWindow > DesiredMss ? largestWindow / 2 : largestWindow;
            mss = (int)Math.Min((uint)mss, cutoff);
        }

        return mss;
    }

    private static int ForcedBuffer(int reported, int queued) => (int)(Math.Min(int.MaxValue, Math.Max(reported, 2L * queued)) / 2);

    /// <summary>Selects <paramref name="queue"/>, reads its sequence and peeks its <paramref name="length"/> bytes into <paramref name="bytes"/> at <paramref name="offset"/>.</summary>
    private static uint PeekQueue(int fd, int queue, byte[] bytes, int offset, int length, string name, Step step)
    {
        SetInt(fd, Inet.IPPROTO_TCP, Tcp.TCP_REPAIR_QUEUE, queue, $"setsockopt(TCP_REPAIR_QUEUE, {name})", step);
        var sequence = (uint)GetInt(fd, Inet.IPPROTO_TCP, Tcp.TCP_QUEUE_SEQ, $"getsockopt(TCP_QUEUE_SEQ, {name})", step);
        if (length == 0)
        {
            return sequence;
        }

        nint peeked;
        fixed (byte* p = &bytes[offset])
        {
            do
            {
                peeked = SysSocket.Recv(fd, p, length + 1, SysSocket.MSG_PEEK | SysSocket.MSG_DONTWAIT);
            }
            while (peeked < 0 && Marshal.GetLastPInvokeError() == Errno.EINTR);
        }

        if (peeked < 0)
        {
            throw step.Fail($"recv(MSG_PEEK) of the {name} queue", Marshal.GetLastPInvokeError());
        }

        if (peeked != length)
        {
            throw step.Fail($"the {name} queue held {peeked} bytes, its size said {length}");
        }

        return sequence;
    }

    /// <summary>Writes <paramref name="bytes"/> into the selected queue, halving the chunk while the kernel refuses one that large.</summary>
    private static void QueueBytes(int fd, ReadOnlySpan<byte> bytes, string name, Step step)
    {
        var chunk = bytes.Length;
        var offset = 0;
        fixed (byte* p = bytes)
        {
            // Bounded: every pass either advances or halves the chunk, and the receive queue
            // takes at most 17 pages per send (MAX_SKB_FRAGS), so a large queue needs
            // length / 68 KiB passes.
            for (var pass = 0; offset < bytes.Length; pass++)
            {
                var sent = SysSocket.Send(fd, p + offset, Math.Min(chunk, bytes.Length - offset), SysSocket.MSG_NOSIGNAL);
                if (sent > 0)
                {
                    offset += (int)sent;
                    continue;
                }

                var errno = sent < 0 ? Marshal.GetLastPInvokeError() : 0;
                if (errno == Errno.EINTR)
                {
                    continue;
                }

                if (chunk <= SmallestQueueChunk || pass > 1_000_000)
                {
                    throw step.Fail($"write {bytes.Length - offset} of {bytes.Length} bytes into the {name} queue", errno);
                }

                chunk /= 2;
            }
        }
    }

    private static void SetRepair(Socket socket, int value, string what)
    {
        var handle = socket.SafeHandle;
        var added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            var fd = (int)handle.DangerousGetHandle();
            if (SysSocket.SetSockOpt(fd, Inet.IPPROTO_TCP, Tcp.TCP_REPAIR, &value, sizeof(int)) < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                throw new Step(what, DescribeTuple(fd)).Fail("setsockopt(TCP_REPAIR)", errno);
            }
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    private static int QueueSize(int fd, uint request, string call, Step step)
    {
        int value;
        if (Ioctl.Call(fd, request, &value) < 0)
        {
            throw step.Fail(call, Marshal.GetLastPInvokeError());
        }

        return value;
    }

    private static int GetInt(int fd, int level, int name, string call, Step step)
    {
        int value;
        GetOption(fd, level, name, new Span<byte>(&value, sizeof(int)), call, step);
        return value;
    }

    private static void GetOption(int fd, int level, int name, Span<byte> value, string call, Step step)
    {
        var length = (uint)value.Length;
        fixed (byte* p = value)
        {
            if (SysSocket.GetSockOpt(fd, level, name, p, &length) < 0)
            {
                throw step.Fail(call, Marshal.GetLastPInvokeError());
            }
        }

        if (length != value.Length)
        {
            throw step.Fail($"{call} returned {length} bytes, not {value.Length}");
        }
    }

    private static void SetInt(int fd, int level, int name, int value, string call, Step step) =>
        SetOption(fd, level, name, new ReadOnlySpan<byte>(&value, sizeof(int)), call, step);

    private static void SetOption(int fd, int level, int name, ReadOnlySpan<byte> value, string call, Step step)
    {
        fixed (byte* p = value)
        {
            if (SysSocket.SetSockOpt(fd, level, name, p, (uint)value.Length) < 0)
            {
                throw step.Fail(call, Marshal.GetLastPInvokeError());
            }
        }
    }

    private static IPEndPoint Name(int fd, bool peer, Step step)
    {
        var address = stackalloc byte[CircuitSockets.MaxAddressLength];
        var length = (uint)CircuitSockets.MaxAddressLength;
        var result = peer ? SysSocket.GetPeerName(fd, address, &length) : SysSocket.GetSockName(fd, address, &length);
        if (result < 0)
        {
            throw step.Fail(peer ? "getpeername" : "getsockname", Marshal.GetLastPInvokeError());
        }

        return CircuitSockets.ParseAddress(new ReadOnlySpan<byte>(address, (int)length))
            ?? throw step.Fail(peer ? "getpeername: not an IPv4 or IPv6 address" : "getsockname: not an IPv4 or IPv6 address");
    }

    /// <summary>"local -> remote" of a descriptor, or what of it can be read, for an error message.</summary>
    private static string DescribeTuple(int fd)
    {
        var unknown = new Step("", "");
        string Part(bool peer)
        {
            try
            {
                return Name(fd, peer, unknown).ToString();
            }
            catch (TcpRepairException)
            {
                return "?";
            }
        }

        return $"{Part(peer: false)} -> {Part(peer: true)}";
    }

    private static IPEndPoint Unmapped(IPEndPoint endpoint) =>
        endpoint.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(endpoint.Address.MapToIPv4(), endpoint.Port) : endpoint;

    /// <summary>What is being done to which connection, for the one line of a failure.</summary>
    private readonly struct Step(string operation, string tuple)
    {
        public TcpRepairException Fail(string what, int errno) =>
            new($"{operation} {tuple}: {what}: {Errno.Describe(errno)} (errno {errno})", errno);

        public TcpRepairException Fail(string what) => new($"{operation} {tuple}: {what}", 0);
    }
}
