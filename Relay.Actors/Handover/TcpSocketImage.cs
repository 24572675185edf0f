using System.Net;
using Relay.Actors.Tuning;

namespace Relay.Actors.Handover;

/// <summary>
/// Everything the kernel knows about one TCP connection that another node needs to go on
/// with it: the 4-tuple, both sequence numbers, both queues' bytes, what the handshake
/// negotiated, the windows and the half-close state, as <see cref="TcpRepair.Dump"/> reads
/// them in repair mode and <see cref="TcpRepair.Restore"/> writes them back.
/// <para>
/// The sequence numbers and the window exclude the FINs (a FIN takes a sequence number but
/// no byte): <see cref="SendSequence"/> and <see cref="ReceiveSequence"/> follow the last
/// byte of their queue, so an image means the same in every state and <see cref="HalfClose"/>
/// alone says which FINs the restore must put back.
/// </para>
/// </summary>
public sealed record TcpSocketImage
{
    /// <summary>The socket's own address (the VIP or egress VIP); IPv4-mapped IPv6 for an IPv4 peer of a dual-stack socket.</summary>
    public required IPEndPoint Local { get; init; }

    /// <summary>The peer's address.</summary>
    public required IPEndPoint Remote { get; init; }

    /// <summary>The state at the dump: established, close-wait, fin-wait-1 or fin-wait-2.</summary>
    public required KernelTcpState State { get; init; }

    /// <summary>Which FINs had been sent, received and acknowledged.</summary>
    public required TcpHalfClose HalfClose { get; init; }

    /// <summary>write_seq without our FIN: the sequence number after the last byte of <see cref="SendQueue"/>.</summary>
    public required uint SendSequence { get; init; }

    /// <summary>rcv_nxt without the peer's FIN: the sequence number after the last byte of <see cref="ReceiveQueue"/>.</summary>
    public required uint ReceiveSequence { get; init; }

    /// <summary>Bytes written and not yet acknowledged: the sent ones first, then the <see cref="UnsentLength"/> never sent.</summary>
    public required ReadOnlyMemory<byte> SendQueue { get; init; }

    /// <summary>How many bytes at the end of <see cref="SendQueue"/> had not been sent.</summary>
    public required int UnsentLength { get; init; }

    /// <summary>Bytes received and acknowledged that the relay had not read yet.</summary>
    public required ReadOnlyMemory<byte> ReceiveQueue { get; init; }

    /// <summary>TCP_MAXSEG: the MSS clamp.</summary>
    public required int MaxSegment { get; init; }

    /// <summary>tcpi_options: TCPI_OPT_TIMESTAMPS (1), TCPI_OPT_SACK (2), TCPI_OPT_WSCALE (4).</summary>
    public required byte Options { get; init; }

    /// <summary>The peer's window scale (meaningful with TCPI_OPT_WSCALE), 0-14.</summary>
    public required byte SendWindowScale { get; init; }

    /// <summary>Our window scale (meaningful with TCPI_OPT_WSCALE), 0-14.</summary>
    public required byte ReceiveWindowScale { get; init; }

    /// <summary>TCP_TIMESTAMP: the socket's timestamp clock, so the peer's PAWS check accepts the new socket's segments (0 without timestamps).</summary>
    public required uint Timestamp { get; init; }

    /// <summary>TCP_REPAIR_WINDOW.</summary>
    public required TcpRepairWindow Window { get; init; }

    /// <summary>TCP_NODELAY.</summary>
    public required bool NoDelay { get; init; }

    /// <summary>SO_SNDBUF as getsockopt reports it (the kernel's doubled value).</summary>
    public required int SendBuffer { get; init; }

    /// <summary>SO_RCVBUF as getsockopt reports it (the kernel's doubled value).</summary>
    public required int ReceiveBuffer { get; init; }

    /// <summary>Bytes of <see cref="SendQueue"/> the peer may already have: restored as sent, so the kernel retransmits them if they were lost.</summary>
    public int SentLength => SendQueue.Length - UnsentLength;

    /// <summary>
    /// Our FIN had not left the old socket and unsent bytes precede it (fin-wait-1 behind a
    /// closed window): the caller shuts the restored socket down (SHUT_WR) after it has written
    /// the unsent bytes, as it would have on the old node. Every other FIN comes back with
    /// <see cref="TcpRepair.ReplayHalfClose"/>; a second shutdown is a no-op, so a data path
    /// that shuts down every side it had shut down before the move is right in all states.
    /// </summary>
    public bool OwesFin => HalfClose == TcpHalfClose.FinUnsent && UnsentLength > 0;

    /// <summary>"local -> remote", for log lines and errors.</summary>
    public string Tuple => $"{Local} -> {Remote}";

    /// <summary>
    /// Null if the image is one <see cref="TcpRepair.Restore"/> can rebuild, else why not (one
    /// line). The binary format refuses an image that fails this; <see cref="TcpRepair.Dump"/>
    /// only makes valid ones.
    /// </summary>
    public string? Problem()
    {
        if (Local.AddressFamily != Remote.AddressFamily)
        {
            return $"{Tuple}: local and remote address families differ";
        }

        if (UnsentLength < 0 || UnsentLength > SendQueue.Length)
        {
            return $"{Tuple}: {UnsentLength} unsent bytes in a send queue of {SendQueue.Length}";
        }

        if (SendWindowScale > 14 || ReceiveWindowScale > 14)
        {
            return $"{Tuple}: window scale {SendWindowScale}/{ReceiveWindowScale} above 14 (RFC 7323 2.3)";
        }

        if (MaxSegment is < 0 or > 65535)
        {
            return $"{Tuple}: MSS {MaxSegment} out of range";
        }

        var expected = State switch
        {
            KernelTcpState.Established => TcpHalfClose.None,
            KernelTcpState.CloseWait => TcpHalfClose.PeerFinReceived,
            KernelTcpState.FinWait1 when HalfClose == TcpHalfClose.FinUnsent => TcpHalfClose.FinUnsent,
            KernelTcpState.FinWait1 => TcpHalfClose.FinSent,
            KernelTcpState.FinWait2 => TcpHalfClose.FinSent | TcpHalfClose.FinAcknowledged,
            _ => (TcpHalfClose?)null,
        };
        if (expected is null)
        {
            return $"{Tuple}: state {State} cannot be restored";
        }

        if (HalfClose != expected)
        {
            return $"{Tuple}: half-close {HalfClose} does not match state {State}";
        }

        if ((HalfClose & TcpHalfClose.FinSent) != 0 && UnsentLength != 0)
        {
            return $"{Tuple}: our FIN left before {UnsentLength} unsent bytes";
        }

        return null;
    }
}

/// <summary>struct tcp_repair_window: what the kernel knows of both windows (TCP_REPAIR_WINDOW, Linux 4.8+).</summary>
/// <param name="SndWl1">The sequence number of the segment that last updated the send window.</param>
/// <param name="SndWnd">The peer's receive window, in bytes.</param>
/// <param name="MaxWindow">The largest window the peer has offered.</param>
/// <param name="RcvWnd">Our receive window, in bytes.</param>
/// <param name="RcvWup">rcv_nxt when our window was last announced.</param>
public readonly record struct TcpRepairWindow(uint SndWl1, uint SndWnd, uint MaxWindow, uint RcvWnd, uint RcvWup);

/// <summary>The FINs of a connection at its dump, each of which the restore must put back.</summary>
[Flags]
public enum TcpHalfClose : byte
{
    /// <summary>Established: no FIN either way.</summary>
    None = 0,

    /// <summary>The peer's FIN was received (close-wait): <see cref="TcpRepair.ReplayHalfClose"/> replays it.</summary>
    PeerFinReceived = 1,

    /// <summary>Our FIN left (fin-wait-1 or -2): <see cref="TcpRepair.ReplayHalfClose"/> sends it again.</summary>
    FinSent = 2,

    /// <summary>The peer acknowledged our FIN (fin-wait-2): it will acknowledge the one sent again too.</summary>
    FinAcknowledged = 4,

    /// <summary>We had shut down but our FIN had not left (fin-wait-1): see <see cref="TcpSocketImage.OwesFin"/>.</summary>
    FinUnsent = 8,
}
