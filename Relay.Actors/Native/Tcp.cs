using System.Runtime.InteropServices;

namespace Relay.Actors.Native;

/// <summary>
/// INTERNAL API. &lt;netinet/tcp.h&gt; (with linux/tcp.h and linux/sockios.h): TCP-level socket
/// options (level <see cref="Inet.IPPROTO_TCP"/>), states, and the TCP_REPAIR interface that
/// checkpoints and restores a connection (CAP_NET_ADMIN; TCP_REPAIR_WINDOW since Linux 4.8).
/// </summary>
internal static class Tcp
{
    public const int TCP_NODELAY = 1;
    public const int TCP_MAXSEG = 2;
    public const int TCP_INFO = 11;
    public const int TCP_CONGESTION = 13;

    /// <summary>Bytes of a congestion-control name, with its NUL.</summary>
    public const int TCP_CA_NAME_MAX = 16;

    // tcpi_state (the first byte of struct tcp_info), include/net/tcp_states.h
    public const byte TCP_ESTABLISHED = 1;
    public const byte TCP_FIN_WAIT1 = 4;
    public const byte TCP_FIN_WAIT2 = 5;

    /// <summary>tcpi_state of a socket whose peer sent its FIN.</summary>
    public const byte TCP_CLOSE_WAIT = 8;

    // tcpi_options bits
    public const byte TCPI_OPT_TIMESTAMPS = 1;
    public const byte TCPI_OPT_SACK = 2;
    public const byte TCPI_OPT_WSCALE = 4;

    /// <summary>int: 1 enters repair mode, 0 leaves it with a window probe, -1 without.</summary>
    public const int TCP_REPAIR = 19;
    /// <summary>int: which queue TCP_QUEUE_SEQ, send and recv(MSG_PEEK) work on in repair mode.</summary>
    public const int TCP_REPAIR_QUEUE = 20;
    /// <summary>u32: the selected queue's sequence (receive: rcv_nxt, send: write_seq); settable only before connect.</summary>
    public const int TCP_QUEUE_SEQ = 21;
    /// <summary>An array of <see cref="RepairOption"/>: what the handshake negotiated.</summary>
    public const int TCP_REPAIR_OPTIONS = 22;
    /// <summary>u32: the socket's timestamp clock (tcp_time_stamp + tsoffset).</summary>
    public const int TCP_TIMESTAMP = 24;
    /// <summary>A <see cref="RepairWindow"/>.</summary>
    public const int TCP_REPAIR_WINDOW = 29;

    public const int TCP_REPAIR_ON = 1;
    public const int TCP_REPAIR_OFF = 0;
    /// <summary>Leave repair mode without the window probe TCP_REPAIR_OFF sends.</summary>
    public const int TCP_REPAIR_OFF_NO_WP = -1;

    public const int TCP_NO_QUEUE = 0;
    public const int TCP_RECV_QUEUE = 1;
    public const int TCP_SEND_QUEUE = 2;

    // tcp_repair_opt.opt_code: the TCP option kinds (RFC 9293, RFC 7323, RFC 2018)
    public const uint TCPOPT_MAXSEG = 2;
    public const uint TCPOPT_WINDOW = 3;
    public const uint TCPOPT_SACK_PERM = 4;
    public const uint TCPOPT_TIMESTAMP = 8;

    /// <summary>struct tcp_repair_opt.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct RepairOption
    {
        public uint Code;
        public uint Value;
    }

    /// <summary>struct tcp_repair_window: the send and receive window state.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct RepairWindow
    {
        public uint SndWl1;
        public uint SndWnd;
        public uint MaxWindow;
        public uint RcvWnd;
        public uint RcvWup;
    }
}
