using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Relay.Actors.Configuration;
using Relay.Actors.Native;

namespace Relay.Actors.Tuning;

/// <summary>
/// Applies one side's socket options and reads them back with getsockopt. Linux only.
/// </summary>
/// <remarks>
/// Call <see cref="Apply"/> on the listening socket before <c>Listen</c> for the client side,
/// and on the upstream socket before <c>ConnectAsync</c>: the window scale is fixed in the SYN
/// from the buffer size at that moment, and TCP_MAXSEG must be in place before the handshake
/// to be advertised. Which options an accepted socket inherits from its listener is pinned
/// down by the tests in Relay.Tests/Tuning.
/// </remarks>
public static class SocketTuner
{
    // TCP_CA_NAME_MAX counts the NUL; the kernel silently truncates longer names, which
    // could select a different algorithm than the one configured.
    private const int CongestionNameMaxBytes = Tcp.TCP_CA_NAME_MAX - 1;

    // Large enough for every struct tcp_info so far (232 bytes in 6.x headers, 248 with the
    // newest RTO fields); the kernel copies min(its size, ours).
    private const int TcpInfoBufferBytes = 256;

    private const string AvailableCongestionPath = "/proc/sys/net/ipv4/tcp_available_congestion_control";
    private const string AllowedCongestionPath = "/proc/sys/net/ipv4/tcp_allowed_congestion_control";

    /// <summary>
    /// Sets every option of <paramref name="side"/> on <paramref name="socket"/>. A <c>null</c>
    /// leaves the kernel's choice alone: in particular SO_RCVBUF/SO_SNDBUF are never touched
    /// when null, because setting them turns Linux's buffer autotuning off for the socket.
    /// </summary>
    /// <exception cref="SocketTuningException">The kernel refused an option; the message names it and the value.</exception>
    public static void Apply(Socket socket, SocketSideSettings side) => Apply(socket, side, includeKeepAlive: true);

    /// <summary>
    /// As <see cref="Apply(Socket, SocketSideSettings)"/>; with <paramref name="includeKeepAlive"/>
    /// false the keepalive options are left for <see cref="ApplyKeepAlive"/> (a new socket has
    /// SO_KEEPALIVE off). The circuit sets an upstream's keepalive once the circuit is a second
    /// old: most circuits are shorter, and the four setsockopt calls were 4% of the relay's CPU
    /// per connection under <c>Connection: close</c> load (perf).
    /// </summary>
    public static void Apply(Socket socket, SocketSideSettings side, bool includeKeepAlive)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(side);

        if (side.ReceiveBuffer is { } receiveBuffer)
        {
            SetInt(socket, SocketOptionLevel.Socket, SocketOptionName.ReceiveBuffer, receiveBuffer, "SO_RCVBUF");
        }

        if (side.SendBuffer is { } sendBuffer)
        {
            SetInt(socket, SocketOptionLevel.Socket, SocketOptionName.SendBuffer, sendBuffer, "SO_SNDBUF");
        }

        SetInt(socket, SocketOptionLevel.Tcp, SocketOptionName.NoDelay, side.NoDelay ? 1 : 0, "TCP_NODELAY");

        if (side.MaxSegment is { } maxSegment)
        {
            Span<byte> value = stackalloc byte[sizeof(int)];
            BitConverter.TryWriteBytes(value, maxSegment);
            SetRaw(socket, Tcp.TCP_MAXSEG, value, "TCP_MAXSEG", maxSegment.ToString(CultureInfo.InvariantCulture));
        }

        if (side.Congestion is { } congestion)
        {
            SetCongestion(socket, congestion);
        }

        if (includeKeepAlive)
        {
            ApplyKeepAlive(socket, side.KeepAlive);
        }
    }

    /// <summary>
    /// The options of <paramref name="side"/> that a TCP_REPAIR restore does not carry over, for
    /// a socket restored after a handover: keepalive and congestion control. Buffer sizes were
    /// forced to hold the restored queues and the segment size and Nagle came with the socket.
    /// </summary>
    public static void ApplyToRestored(Socket socket, SocketSideSettings side)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(side);
        if (side.Congestion is { } congestion)
        {
            SetCongestion(socket, congestion);
        }

        ApplyKeepAlive(socket, side.KeepAlive);
    }

    /// <summary>Sets SO_KEEPALIVE and, when enabled, its idle time, interval and probe count.</summary>
    /// <exception cref="SocketTuningException">The kernel refused an option; the message names it and the value.</exception>
    public static void ApplyKeepAlive(Socket socket, KeepAliveSettings keepAlive)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(keepAlive);

        SetInt(socket, SocketOptionLevel.Socket, SocketOptionName.KeepAlive, keepAlive.Enabled ? 1 : 0, "SO_KEEPALIVE");
        if (keepAlive.Enabled)
        {
            SetInt(socket, SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, Seconds(keepAlive.Idle), "TCP_KEEPIDLE");
            SetInt(socket, SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, Seconds(keepAlive.Interval), "TCP_KEEPINTVL");
            SetInt(socket, SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, keepAlive.Count, "TCP_KEEPCNT");
        }
    }

    /// <summary>Reads the options <see cref="Apply"/> sets, as the kernel reports them now.</summary>
    public static SocketOptionsSnapshot Read(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);

        Span<byte> maxSegment = stackalloc byte[sizeof(int)];
        socket.GetRawSocketOption(Inet.IPPROTO_TCP, Tcp.TCP_MAXSEG, maxSegment);

        return new SocketOptionsSnapshot(
            GetInt(socket, SocketOptionLevel.Socket, SocketOptionName.ReceiveBuffer),
            GetInt(socket, SocketOptionLevel.Socket, SocketOptionName.SendBuffer),
            GetInt(socket, SocketOptionLevel.Tcp, SocketOptionName.NoDelay) != 0,
            BitConverter.ToInt32(maxSegment),
            ReadCongestion(socket),
            GetInt(socket, SocketOptionLevel.Socket, SocketOptionName.KeepAlive) != 0,
            GetInt(socket, SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime),
            GetInt(socket, SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval),
            GetInt(socket, SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount));
    }

    /// <summary>
    /// The congestion-control algorithms the kernel has loaded
    /// (/proc/sys/net/ipv4/tcp_available_congestion_control); empty if that file is missing.
    /// </summary>
    public static IReadOnlyList<string> AvailableCongestionControls() => ReadNameList(AvailableCongestionPath);

    /// <summary>
    /// getsockopt TCP_INFO: the kernel's state, RTT, windows and counters for the connection.
    /// Returns <c>null</c> when the socket has been closed.
    /// </summary>
    public static TcpInfoSnapshot? ReadTcpInfo(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);

        Span<byte> buffer = stackalloc byte[TcpInfoBufferBytes];
        int length;
        try
        {
            length = socket.GetRawSocketOption(Inet.IPPROTO_TCP, Tcp.TCP_INFO, buffer);
        }
        catch (ObjectDisposedException)
        {
            return null;
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.OperationAborted or SocketError.NotSocket)
        {
            return null;
        }

        return DecodeTcpInfo(buffer[..length]);
    }

    // struct tcp_info, linux/tcp.h; offsets checked with offsetof against the 6.x header.
    // Native byte order: the kernel writes the struct as it lays it out in memory.
    internal static TcpInfoSnapshot? DecodeTcpInfo(ReadOnlySpan<byte> info)
    {
        // Everything up to tcpi_total_retrans has been there since Linux 2.6.
        if (info.Length < 104)
        {
            return null;
        }

        return new TcpInfoSnapshot
        {
            State = (KernelTcpState)info[0],
            CaState = info[1],
            Retransmits = info[2],
            Probes = info[3],
            Backoff = info[4],
            SendWindowScale = info[6] & 0x0F,
            ReceiveWindowScale = info[6] >> 4,
            RtoMicros = U32(info, 8),
            AtoMicros = U32(info, 12),
            SendMss = U32(info, 16),
            ReceiveMss = U32(info, 20),
            Unacked = U32(info, 24),
            Sacked = U32(info, 28),
            Lost = U32(info, 32),
            Retrans = U32(info, 36),
            LastDataSentMillis = U32(info, 44),
            LastDataReceivedMillis = U32(info, 52),
            LastAckReceivedMillis = U32(info, 56),
            Pmtu = U32(info, 60),
            ReceiveSsthresh = U32(info, 64),
            RttMicros = U32(info, 68),
            RttVarMicros = U32(info, 72),
            SendSsthresh = U32(info, 76),
            SendCwnd = U32(info, 80),
            AdvertisedMss = U32(info, 84),
            Reordering = U32(info, 88),
            ReceiveRttMicros = U32(info, 92),
            ReceiveSpace = U32(info, 96),
            TotalRetrans = U32(info, 100),
            PacingRate = OptionalU64(info, 104),
            BytesAcked = OptionalU64(info, 120),
            BytesReceived = OptionalU64(info, 128),
            SegmentsOut = OptionalU32(info, 136),
            SegmentsIn = OptionalU32(info, 140),
            NotSentBytes = OptionalU32(info, 144),
            MinRttMicros = OptionalU32(info, 148),
            DeliveryRate = OptionalU64(info, 160),
            BytesSent = OptionalU64(info, 200),
            BytesRetrans = OptionalU64(info, 208),
            SendWindow = OptionalU32(info, 228),
        };
    }

    private static uint U32(ReadOnlySpan<byte> info, int offset) =>
        BitConverter.ToUInt32(info.Slice(offset, sizeof(uint)));

    private static uint? OptionalU32(ReadOnlySpan<byte> info, int offset) =>
        info.Length >= offset + sizeof(uint) ? U32(info, offset) : null;

    private static ulong? OptionalU64(ReadOnlySpan<byte> info, int offset) =>
        info.Length >= offset + sizeof(ulong) ? BitConverter.ToUInt64(info.Slice(offset, sizeof(ulong))) : null;

    private static void SetCongestion(Socket socket, string algorithm)
    {
        var name = Encoding.ASCII.GetBytes(algorithm);
        if (algorithm.Length == 0 || name.Length > CongestionNameMaxBytes || !algorithm.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
        {
            throw new SocketTuningException(
                "TCP_CONGESTION",
                algorithm,
                $"TCP_CONGESTION = \"{algorithm}\" is not a congestion-control name (1 to {CongestionNameMaxBytes} ASCII letters, digits, '_' or '-'); {DescribeCongestionChoices()}");
        }

        try
        {
            socket.SetRawSocketOption(Inet.IPPROTO_TCP, Tcp.TCP_CONGESTION, name);
        }
        catch (SocketException e)
        {
            // .NET maps the kernel's ENOENT to AddressNotAvailable, whose text ("Cannot assign
            // requested address") would mislead, so say what each errno means here.
            var reason = e.SocketErrorCode switch
            {
                // ENOENT: the kernel neither has nor could load tcp_<name>.
                SocketError.AddressNotAvailable => "the kernel has no such algorithm",
                // EPERM: loaded, but not in tcp_allowed_congestion_control and no CAP_NET_ADMIN.
                SocketError.AccessDenied => "not allowed for this process",
                _ => e.Message,
            };
            throw new SocketTuningException(
                "TCP_CONGESTION",
                algorithm,
                $"TCP_CONGESTION = \"{algorithm}\" was refused: {reason}; {DescribeCongestionChoices()}",
                e);
        }
    }

    private static string DescribeCongestionChoices()
    {
        var available = AvailableCongestionControls();
        var allowed = ReadNameList(AllowedCongestionPath);
        var text = $"available ({AvailableCongestionPath}): {Join(available)}";
        return allowed.SequenceEqual(available)
            ? text
            : $"{text}; allowed without CAP_NET_ADMIN ({AllowedCongestionPath}): {Join(allowed)}";

        static string Join(IReadOnlyList<string> names) => names.Count == 0 ? "(unknown)" : string.Join(' ', names);
    }

    private static string ReadCongestion(Socket socket)
    {
        Span<byte> name = stackalloc byte[CongestionNameMaxBytes + 1];
        var length = socket.GetRawSocketOption(Inet.IPPROTO_TCP, Tcp.TCP_CONGESTION, name);
        var text = name[..length];
        var end = text.IndexOf((byte)0);
        return Encoding.ASCII.GetString(end >= 0 ? text[..end] : text);
    }

    private static IReadOnlyList<string> ReadNameList(string path)
    {
        try
        {
            return File.ReadAllText(path).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        }
        catch (IOException)
        {
            return [];
        }
        catch (UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static int Seconds(TimeSpan value) =>
        value <= TimeSpan.Zero ? 0 : (int)Math.Min(int.MaxValue, Math.Ceiling(value.TotalSeconds));

    private static void SetInt(Socket socket, SocketOptionLevel level, SocketOptionName name, int value, string option)
    {
        try
        {
            socket.SetSocketOption(level, name, value);
        }
        catch (SocketException e)
        {
            throw Refused(option, value.ToString(CultureInfo.InvariantCulture), e);
        }
    }

    private static void SetRaw(Socket socket, int optionName, ReadOnlySpan<byte> value, string option, string shown)
    {
        try
        {
            socket.SetRawSocketOption(Inet.IPPROTO_TCP, optionName, value);
        }
        catch (SocketException e)
        {
            throw Refused(option, shown, e);
        }
    }

    private static int GetInt(Socket socket, SocketOptionLevel level, SocketOptionName name) =>
        (int)socket.GetSocketOption(level, name)!;

    private static SocketTuningException Refused(string option, string value, SocketException e) =>
        new(option, value, $"{option} = {value} was refused by the kernel ({e.Message}).", e);
}
