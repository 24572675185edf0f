namespace Relay.Actors.Tuning;

/// <summary>
/// A socket's tunable options as getsockopt reports them. Linux reports SO_RCVBUF/SO_SNDBUF
/// doubled (it adds room for its own bookkeeping), and TCP_MAXSEG is the configured clamp
/// before the handshake and the negotiated MSS after it.
/// </summary>
public sealed record SocketOptionsSnapshot(
    int ReceiveBuffer,
    int SendBuffer,
    bool NoDelay,
    int MaxSegment,
    string Congestion,
    bool KeepAlive,
    int KeepAliveIdleSeconds,
    int KeepAliveIntervalSeconds,
    int KeepAliveCount);
