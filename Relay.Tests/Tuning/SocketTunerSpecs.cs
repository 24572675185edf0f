using System.Net;
using System.Net.Sockets;
using Relay.Actors.Configuration;
using Relay.Actors.Tuning;

namespace Relay.Tests.Tuning;

public sealed class SocketTunerSpecs
{
    private static readonly KeepAliveSettings KeepAliveOff = new(false, TimeSpan.FromHours(2), TimeSpan.FromSeconds(75), 9);

    private static readonly SocketSideSettings Auto = new(null, null, false, null, null, KeepAliveOff);

    private static readonly SocketSideSettings Tuned = new(
        ReceiveBuffer: 256 * 1024,
        SendBuffer: 128 * 1024,
        NoDelay: true,
        MaxSegment: 1200,
        Congestion: "reno",
        KeepAlive: new KeepAliveSettings(true, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(7), 4));

    [Fact]
    public void Every_option_reads_back_as_set_with_buffers_doubled_by_linux()
    {
        using var socket = NewTcpSocket();

        SocketTuner.Apply(socket, Tuned);

        var read = SocketTuner.Read(socket);
        Assert.Equal(2 * 256 * 1024, read.ReceiveBuffer);
        Assert.Equal(2 * 128 * 1024, read.SendBuffer);
        Assert.True(read.NoDelay);
        Assert.Equal(1200, read.MaxSegment);
        Assert.Equal("reno", read.Congestion);
        Assert.True(read.KeepAlive);
        Assert.Equal(30, read.KeepAliveIdleSeconds);
        Assert.Equal(7, read.KeepAliveIntervalSeconds);
        Assert.Equal(4, read.KeepAliveCount);
    }

    [Fact]
    public void Switched_off_options_read_back_off()
    {
        using var socket = NewTcpSocket();
        SocketTuner.Apply(socket, Tuned);

        SocketTuner.Apply(socket, Tuned with { NoDelay = false, KeepAlive = KeepAliveOff });

        var read = SocketTuner.Read(socket);
        Assert.False(read.NoDelay);
        Assert.False(read.KeepAlive);
    }

    [Fact]
    public void Every_congestion_control_the_kernel_offers_can_be_set_and_read_back()
    {
        var available = SocketTuner.AvailableCongestionControls();
        Assert.NotEmpty(available);

        foreach (var algorithm in available)
        {
            using var socket = NewTcpSocket();
            SocketTuner.Apply(socket, Auto with { Congestion = algorithm });
            Assert.Equal(algorithm, SocketTuner.Read(socket).Congestion);
        }
    }

    [Fact]
    public void Auto_buffers_leave_the_kernel_defaults_untouched()
    {
        using var fresh = NewTcpSocket();
        using var tuned = NewTcpSocket();

        SocketTuner.Apply(tuned, Auto);

        var defaults = SocketTuner.Read(fresh);
        var read = SocketTuner.Read(tuned);
        Assert.Equal(defaults.ReceiveBuffer, read.ReceiveBuffer);
        Assert.Equal(defaults.SendBuffer, read.SendBuffer);
        Assert.Equal(defaults.MaxSegment, read.MaxSegment);
        Assert.Equal(defaults.Congestion, read.Congestion);
    }

    [Fact]
    public async Task Auto_buffers_keep_receive_autotuning_on_and_a_fixed_buffer_turns_it_off()
    {
        // Autotuning grows SO_RCVBUF while the application drains a bulk transfer
        // (tcp_rcv_space_adjust); a buffer set by hand is locked (SOCK_RCVBUF_LOCK) and never moves.
        var (autoStart, autoEnd) = await ReceiveBufferAcrossBulkTransfer(Auto);
        var (fixedStart, fixedEnd) = await ReceiveBufferAcrossBulkTransfer(Auto with { ReceiveBuffer = 64 * 1024 });

        Assert.True(autoEnd > autoStart, $"auto: SO_RCVBUF {autoStart} -> {autoEnd}");
        Assert.Equal(2 * 64 * 1024, fixedStart);
        Assert.Equal(fixedStart, fixedEnd);
    }

    [Fact]
    public async Task Options_on_the_upstream_socket_hold_after_connect_and_maxseg_clamps_the_mss()
    {
        using var listener = NewTcpSocket();
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var upstream = NewTcpSocket();

        SocketTuner.Apply(upstream, Tuned);
        await upstream.ConnectAsync(listener.LocalEndPoint!);
        using var accepted = await listener.AcceptAsync();

        var read = SocketTuner.Read(upstream);
        Assert.Equal(2 * 256 * 1024, read.ReceiveBuffer);
        Assert.Equal(2 * 128 * 1024, read.SendBuffer);
        Assert.True(read.NoDelay);
        Assert.InRange(read.MaxSegment, 1, 1200);
        Assert.Equal("reno", read.Congestion);
        Assert.Equal((true, 30, 7, 4), (read.KeepAlive, read.KeepAliveIdleSeconds, read.KeepAliveIntervalSeconds, read.KeepAliveCount));

        // The SYN advertised MSS 1200, so the peer sends segments no larger than that either.
        var peer = SocketTuner.ReadTcpInfo(accepted);
        Assert.NotNull(peer);
        Assert.InRange(peer.SendMss, 1u, 1200u);
    }

    [Fact]
    public async Task An_accepted_socket_inherits_every_option_set_on_its_listener()
    {
        // Measured on Linux 6.18: buffers (with their lock), TCP_NODELAY, SO_KEEPALIVE and its
        // three timers, TCP_MAXSEG and TCP_CONGESTION all pass from listener to accepted socket,
        // so the client side needs no second setsockopt round per connection.
        // The control pair (an untuned listener) proves each value really came from the listener.
        var control = await AcceptedThrough(Auto);
        var congestion = SocketTuner.AvailableCongestionControls().FirstOrDefault(name => name != control.Options.Congestion) ?? "reno";
        var tuned = await AcceptedThrough(Tuned with { Congestion = congestion });

        var read = tuned.Options;
        Assert.Equal((2 * 256 * 1024, 2 * 128 * 1024), (read.ReceiveBuffer, read.SendBuffer));
        Assert.NotEqual((read.ReceiveBuffer, read.SendBuffer), (control.Options.ReceiveBuffer, control.Options.SendBuffer));
        Assert.True(read.NoDelay);
        Assert.False(control.Options.NoDelay);
        Assert.InRange(read.MaxSegment, 1, 1200);
        Assert.True(control.Options.MaxSegment > 1200, $"control MSS {control.Options.MaxSegment}");
        Assert.Equal(congestion, read.Congestion);
        Assert.True(read.KeepAlive);
        Assert.False(control.Options.KeepAlive);
        Assert.Equal((30, 7, 4), (read.KeepAliveIdleSeconds, read.KeepAliveIntervalSeconds, read.KeepAliveCount));
        Assert.NotEqual((30, 7, 4), (control.Options.KeepAliveIdleSeconds, control.Options.KeepAliveIntervalSeconds, control.Options.KeepAliveCount));

        // The listener advertised MSS 1200 in its SYN-ACK, so the connecting side is clamped too.
        Assert.InRange(tuned.ClientSendMss, 1u, 1200u);
    }

    [Fact]
    public void An_unknown_congestion_control_is_a_one_line_error_naming_the_value_and_the_choices()
    {
        using var socket = NewTcpSocket();

        var error = Assert.Throws<SocketTuningException>(() => SocketTuner.Apply(socket, Auto with { Congestion = "nosuchcc" }));

        Assert.Equal("TCP_CONGESTION", error.Option);
        Assert.Equal("nosuchcc", error.Value);
        Assert.Contains("TCP_CONGESTION = \"nosuchcc\"", error.Message);
        Assert.Contains("no such algorithm", error.Message);
        Assert.Contains("/proc/sys/net/ipv4/tcp_available_congestion_control", error.Message);
        Assert.All(SocketTuner.AvailableCongestionControls(), name => Assert.Contains(name, error.Message));
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public void A_congestion_name_the_kernel_would_truncate_is_rejected_before_it_gets_there()
    {
        using var socket = NewTcpSocket();

        var error = Assert.Throws<SocketTuningException>(() => SocketTuner.Apply(socket, Auto with { Congestion = "cubic-but-much-too-long" }));

        Assert.Contains("cubic-but-much-too-long", error.Message);
    }

    [Fact]
    public void A_keepalive_count_out_of_the_kernel_range_names_the_option_and_value()
    {
        using var socket = NewTcpSocket();
        var side = Auto with { KeepAlive = new KeepAliveSettings(true, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(5), 1000) };

        var error = Assert.Throws<SocketTuningException>(() => SocketTuner.Apply(socket, side));

        Assert.Equal("TCP_KEEPCNT", error.Option);
        Assert.Contains("TCP_KEEPCNT = 1000", error.Message);
    }

    [Fact]
    public async Task Tcp_info_on_a_connected_pair_reports_established_with_an_mss()
    {
        using var listener = NewTcpSocket();
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var client = NewTcpSocket();
        await client.ConnectAsync(listener.LocalEndPoint!);
        var accepted = await listener.AcceptAsync();
        await client.SendAsync(new byte[1000]);
        var buffer = new byte[1000];
        var received = 0;
        while (received < buffer.Length)
        {
            received += await accepted.ReceiveAsync(buffer.AsMemory(received));
        }

        var info = SocketTuner.ReadTcpInfo(client);
        var acceptedInfo = SocketTuner.ReadTcpInfo(accepted);

        Assert.NotNull(info);
        Assert.NotNull(acceptedInfo);
        Assert.Equal(KernelTcpState.Established, info.State);
        Assert.Equal(KernelTcpState.Established, acceptedInfo.State);
        Assert.True(info.SendMss > 0);
        Assert.True(info.ReceiveMss > 0);
        Assert.True(info.Pmtu > 0);
        Assert.True(info.SendCwnd > 0);
        Assert.True(info.RttMicros > 0);
        Assert.Equal(1000UL, info.BytesSent);
        Assert.Equal(1000UL, acceptedInfo.BytesReceived);
        Assert.Equal(KernelTcpState.Listen, SocketTuner.ReadTcpInfo(listener)!.State);

        accepted.Dispose();
        Assert.Null(SocketTuner.ReadTcpInfo(accepted));
    }

    private static async Task<(SocketOptionsSnapshot Options, uint ClientSendMss)> AcceptedThrough(SocketSideSettings listenerSide)
    {
        using var listener = NewTcpSocket();
        SocketTuner.Apply(listener, listenerSide);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var client = NewTcpSocket();
        await client.ConnectAsync(listener.LocalEndPoint!);
        using var accepted = await listener.AcceptAsync();
        return (SocketTuner.Read(accepted), SocketTuner.ReadTcpInfo(client)!.SendMss);
    }

    private static async Task<(int Start, int End)> ReceiveBufferAcrossBulkTransfer(SocketSideSettings receiverSide)
    {
        using var listener = NewTcpSocket();
        SocketTuner.Apply(listener, receiverSide);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var sender = NewTcpSocket();
        await sender.ConnectAsync(listener.LocalEndPoint!);
        using var receiver = await listener.AcceptAsync();
        var start = SocketTuner.Read(receiver).ReceiveBuffer;

        const int Total = 32 * 1024 * 1024;
        var send = Task.Run(async () =>
        {
            var chunk = new byte[64 * 1024];
            for (var sent = 0; sent < Total; sent += chunk.Length)
            {
                await sender.SendAsync(chunk);
            }
        });
        var buffer = new byte[256 * 1024];
        for (var received = 0; received < Total;)
        {
            received += await receiver.ReceiveAsync(buffer);
        }

        await send;
        return (start, SocketTuner.Read(receiver).ReceiveBuffer);
    }

    private static Socket NewTcpSocket() => new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
}
