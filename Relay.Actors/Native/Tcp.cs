namespace Relay.Actors.Native;

/// <summary>INTERNAL API. &lt;netinet/tcp.h&gt;: TCP-level socket options (level <see cref="Inet.IPPROTO_TCP"/>) and states.</summary>
internal static class Tcp
{
    public const int TCP_MAXSEG = 2;
    public const int TCP_INFO = 11;
    public const int TCP_CONGESTION = 13;

    /// <summary>Bytes of a congestion-control name, with its NUL.</summary>
    public const int TCP_CA_NAME_MAX = 16;

    /// <summary>tcpi_state (the first byte of struct tcp_info) of a socket whose peer sent its FIN.</summary>
    public const byte TCP_CLOSE_WAIT = 8;
}
