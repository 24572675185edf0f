namespace Relay.Actors.Tuning;

/// <summary>
/// The kernel's view of one TCP connection (getsockopt TCP_INFO, <c>struct tcp_info</c> in
/// linux/tcp.h). Times are microseconds unless the name says milliseconds; sizes in bytes,
/// windows in segments. Fields the running kernel does not fill are <c>null</c>.
/// </summary>
public sealed record TcpInfoSnapshot
{
    public required KernelTcpState State { get; init; }

    /// <summary>Congestion-avoidance state: 0 open, 1 disorder, 2 CWR, 3 recovery, 4 loss.</summary>
    public required int CaState { get; init; }

    /// <summary>Unrecovered RTO timeouts in a row.</summary>
    public required int Retransmits { get; init; }

    public required int Probes { get; init; }

    public required int Backoff { get; init; }

    public required int SendWindowScale { get; init; }

    public required int ReceiveWindowScale { get; init; }

    public required uint RtoMicros { get; init; }

    public required uint AtoMicros { get; init; }

    public required uint SendMss { get; init; }

    public required uint ReceiveMss { get; init; }

    /// <summary>Segments sent and not yet acknowledged.</summary>
    public required uint Unacked { get; init; }

    public required uint Sacked { get; init; }

    public required uint Lost { get; init; }

    /// <summary>Segments retransmitted and not yet acknowledged.</summary>
    public required uint Retrans { get; init; }

    public required uint LastDataSentMillis { get; init; }

    public required uint LastDataReceivedMillis { get; init; }

    public required uint LastAckReceivedMillis { get; init; }

    /// <summary>Path MTU.</summary>
    public required uint Pmtu { get; init; }

    public required uint ReceiveSsthresh { get; init; }

    /// <summary>Smoothed round-trip time.</summary>
    public required uint RttMicros { get; init; }

    public required uint RttVarMicros { get; init; }

    public required uint SendSsthresh { get; init; }

    /// <summary>Congestion window, in segments.</summary>
    public required uint SendCwnd { get; init; }

    public required uint AdvertisedMss { get; init; }

    public required uint Reordering { get; init; }

    public required uint ReceiveRttMicros { get; init; }

    public required uint ReceiveSpace { get; init; }

    /// <summary>Segments retransmitted over the connection's life.</summary>
    public required uint TotalRetrans { get; init; }

    /// <summary>Bytes per second.</summary>
    public ulong? PacingRate { get; init; }

    public ulong? BytesAcked { get; init; }

    public ulong? BytesReceived { get; init; }

    public uint? SegmentsOut { get; init; }

    public uint? SegmentsIn { get; init; }

    /// <summary>Bytes written by the application that the kernel has not sent yet.</summary>
    public uint? NotSentBytes { get; init; }

    public uint? MinRttMicros { get; init; }

    /// <summary>Bytes per second.</summary>
    public ulong? DeliveryRate { get; init; }

    public ulong? BytesSent { get; init; }

    public ulong? BytesRetrans { get; init; }

    /// <summary>The peer's advertised receive window after scaling, in bytes.</summary>
    public uint? SendWindow { get; init; }
}

/// <summary>TCP states as Linux numbers them in <c>tcpi_state</c> (include/net/tcp_states.h).</summary>
public enum KernelTcpState
{
    Unknown = 0,
    Established = 1,
    SynSent = 2,
    SynReceived = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
    NewSynReceived = 12,
}
