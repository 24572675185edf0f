using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Relay.Actors.Native;

namespace Relay.Actors.Handover;

/// <summary>
/// A TCP connection between two members that carries circuit images during a handover:
/// framed messages both ways, each <c>[u32 payload length, little-endian][u8 type][payload]</c>.
/// The target opens it with a <see cref="StateChannelOffer"/>, the source with
/// <see cref="ConnectAsync"/>; one channel per handover.
/// </summary>
/// <remarks>
/// <para>
/// Why a socket of its own rather than Akka.Remote, which carries the control messages
/// (offer, start, ack): the images are binary and tens of MB in all when queues are full.
/// Akka.Remote's frame limit (128 KB by default) would need them chunked, and its
/// serialization copies every byte through envelopes on both sides, which lengthens the
/// pause. A raw socket streams the binary format at wire speed: the sender serializes
/// straight into the buffer that goes to the kernel
/// (<see cref="SendAsync(byte, Action{IBufferWriter{byte}}, CancellationToken)"/>), the
/// receiver reads each frame into one pooled array.
/// </para>
/// <para>
/// Who may connect: only the member the target made the offer to (its address, checked at
/// accept) holding the offer's 32-byte random token, which travelled to it over Akka.Remote,
/// that is to a cluster member only. See <see cref="StateChannelOffer"/>.
/// </para>
/// <para>
/// One send and one receive may run at the same time (the channel is full duplex); two sends
/// or two receives at once throw. A send or receive that fails or is cancelled closes the
/// channel, because the position in the frame stream is lost with it.
/// </para>
/// </remarks>
public sealed class StateChannel : IDisposable
{
    /// <summary>
    /// The largest payload a frame may carry unless the channel was opened with another: a batch
    /// of one circuit image of the largest body the format reads, with room for its headers. A
    /// full-speed circuit with autotuned buffers (tcp_rmem up to 32 MB each way) holds more than
    /// 64 MB, which the limit was, and its handover could only roll back. The length is checked
    /// before anything is allocated, and only after the peer's token was accepted.
    /// </summary>
    public const int DefaultMaxFrameSize = CircuitImageFormat.MaxBodyBytes + (64 * 1024);

    /// <summary>Bytes before each payload: the length (4) and the type (1).</summary>
    public const int HeaderSize = 5;

    /// <summary>
    /// The byte a target answers an accepted token with: the framing's version, so a node of
    /// a later release that frames differently is refused at connect rather than misread.
    /// </summary>
    internal const byte ProtocolVersion = 1;

    /// <summary>
    /// Socket buffers of both ends. Tens of MB leave in one burst at the freeze; a send
    /// buffer this size takes a 1 MB frame without waiting for acknowledgements, and a receive
    /// buffer this size keeps the window open for a 10-25 Gbit/s LAN's bandwidth-delay product
    /// (25 Gbit/s x 1 ms = 3 MB) from the first round trip, without waiting for autotuning to
    /// grow it. Loopback cannot show that: there the forced 4 MB (8 MB as the kernel counts)
    /// and autotuning moved 50 MB equally fast, 2.1 and 2.4 GB/s (medians of 24 runs on a
    /// loaded 2-core host, within the runs' spread).
    /// </summary>
    internal const int SocketBufferSize = 4 * 1024 * 1024;

    /// <summary>Payloads up to this size are copied behind the header and leave in one send (one segment with TCP_NODELAY).</summary>
    private const int CoalesceLimit = 64 * 1024;

    private readonly Socket _socket;
    private readonly byte[] _receiveHeader = new byte[HeaderSize];
    private readonly byte[] _sendHeader = new byte[HeaderSize];
    private readonly StateChannelFrameWriter _writer;
    private int _sending;
    private int _receiving;
    private int _disposed;

    internal StateChannel(Socket socket, int maxFrameSize)
    {
        _socket = socket;
        MaxFrameSize = maxFrameSize;
        LocalEndPoint = (IPEndPoint)socket.LocalEndPoint!;
        RemoteEndPoint = (IPEndPoint)socket.RemoteEndPoint!;
        _writer = new StateChannelFrameWriter(maxFrameSize);
    }

    /// <summary>The largest payload this end sends or accepts, in bytes.</summary>
    public int MaxFrameSize { get; }

    public IPEndPoint LocalEndPoint { get; }

    public IPEndPoint RemoteEndPoint { get; }

    /// <summary>
    /// The source's side: connects to the <paramref name="target"/>'s offer, sends the
    /// <paramref name="token"/> it received over Akka.Remote, and returns once the target has
    /// accepted it. <paramref name="localAddress"/>, when given, is bound first: pass this
    /// node's cluster address, since the target admits only that address and the route to the
    /// target could otherwise pick another source address of this host (a VIP).
    /// </summary>
    /// <exception cref="StateChannelException">Refused (wrong token, not the expected member,
    /// the offer expired), unreachable, or a socket error; the message names the target.</exception>
    public static async Task<StateChannel> ConnectAsync(
        IPEndPoint target,
        ReadOnlyMemory<byte> token,
        IPAddress? localAddress = null,
        int maxFrameSize = DefaultMaxFrameSize,
        CancellationToken cancellationToken = default)
    {
        if (token.Length != StateChannelOffer.TokenLength)
        {
            throw new ArgumentException($"A state channel token is {StateChannelOffer.TokenLength} bytes, not {token.Length}.", nameof(token));
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxFrameSize);
        var socket = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            Tune(socket);
            if (localAddress is not null)
            {
                socket.Bind(new IPEndPoint(localAddress, 0));
            }

            await socket.ConnectAsync(target, cancellationToken).ConfigureAwait(false);
            await SendAllAsync(socket, token, cancellationToken).ConfigureAwait(false);
            var answer = new byte[1];
            if (await ReceiveAnswerAsync(socket, answer, cancellationToken).ConfigureAwait(false) == 0)
            {
                throw new StateChannelException(
                    $"state channel to {target}: the target closed the connection without accepting the token (a wrong token, not the member it expects, or its offer expired)");
            }

            if (answer[0] != ProtocolVersion)
            {
                throw new StateChannelException($"state channel to {target}: the target speaks version {answer[0]} of the channel, this node {ProtocolVersion}");
            }

            return new StateChannel(socket, maxFrameSize);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new StateChannelException($"state channel to {target}: {Describe(e)}", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Sends one frame whose payload is <paramref name="payload"/>.</summary>
    /// <exception cref="ArgumentException">The payload is larger than <see cref="MaxFrameSize"/>; nothing was sent.</exception>
    public async ValueTask SendAsync(byte type, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        if (payload.Length > MaxFrameSize)
        {
            throw new ArgumentException($"A state channel frame carries at most {MaxFrameSize} bytes, not {payload.Length}.", nameof(payload));
        }

        BeginSend();
        try
        {
            if (payload.Length <= CoalesceLimit)
            {
                var frame = _writer.Start(type);
                payload.Span.CopyTo(frame.GetSpan(payload.Length));
                frame.Advance(payload.Length);
                await SendAllAsync(_socket, _writer.Finish(), cancellationToken).ConfigureAwait(false);
            }
            else
            {
                WriteHeader(_sendHeader, type, payload.Length);
                // Two sends rather than a copy: one extra small segment per large frame. Measured
                // against one gathered sendmsg and against copying behind the header: 50 MB in
                // 1 MB frames over loopback ran at 2.4-3.0 GB/s all three ways (medians of 24).
                await SendAllAsync(_socket, _sendHeader, cancellationToken).ConfigureAwait(false);
                await SendAllAsync(_socket, payload, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            throw Fail(e, "send");
        }
        finally
        {
            Volatile.Write(ref _sending, 0);
        }
    }

    /// <summary>
    /// Sends one frame whose payload <paramref name="writePayload"/> writes into a pooled
    /// buffer, right behind the header, so a caller serializes circuit images into the bytes
    /// that go to the kernel without a copy of its own. The buffer is kept for the channel's
    /// next frames (it grows to the largest frame sent).
    /// </summary>
    /// <exception cref="StateChannelException">The payload grew beyond <see cref="MaxFrameSize"/>;
    /// nothing was sent and the channel stays open.</exception>
    public async ValueTask SendAsync(byte type, Action<IBufferWriter<byte>> writePayload, CancellationToken cancellationToken = default)
    {
        BeginSend();
        try
        {
            // A callback that throws leaves nothing sent: the stream stays at a frame boundary,
            // and the next Start begins the buffer afresh.
            writePayload(_writer.Start(type));
            var frame = _writer.Finish();
            try
            {
                await SendAllAsync(_socket, frame, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                throw Fail(e, "send");
            }
        }
        finally
        {
            Volatile.Write(ref _sending, 0);
        }
    }

    /// <summary>
    /// The next frame, or null when the peer finished sending (<see cref="CompleteSending"/>
    /// or a close) at a frame boundary. The frame's payload is pooled: dispose the frame.
    /// </summary>
    /// <exception cref="StateChannelException">The peer closed mid-frame, announced a frame above
    /// <see cref="MaxFrameSize"/>, or the socket failed.</exception>
    public async ValueTask<StateChannelFrame?> ReceiveAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _receiving, 1) != 0)
        {
            throw new InvalidOperationException("Another receive is in progress on this state channel.");
        }

        byte[]? payload = null;
        try
        {
            var got = await ReceiveAtLeastAsync(_receiveHeader, HeaderSize, cancellationToken).ConfigureAwait(false);
            if (got == 0)
            {
                return null;
            }

            if (got < HeaderSize)
            {
                throw new StateChannelException($"state channel from {RemoteEndPoint}: the peer closed after {got} of a frame header's {HeaderSize} bytes");
            }

            var length = BinaryPrimitives.ReadUInt32LittleEndian(_receiveHeader);
            if (length > (uint)MaxFrameSize)
            {
                // Checked before anything is allocated: a stray or hostile length cannot make
                // this node rent gigabytes.
                throw new StateChannelException(
                    $"state channel from {RemoteEndPoint}: a frame of {length} bytes exceeds the maximum of {MaxFrameSize} bytes (a corrupt stream, or not a state channel peer)");
            }

            payload = length == 0 ? [] : ArrayPool<byte>.Shared.Rent((int)length);
            got = await ReceiveAtLeastAsync(payload.AsMemory(0, (int)length), (int)length, cancellationToken).ConfigureAwait(false);
            if (got < length)
            {
                throw new StateChannelException($"state channel from {RemoteEndPoint}: the peer closed after {got} of a frame's {length} bytes");
            }

            var frame = new StateChannelFrame(_receiveHeader[4], payload, (int)length);
            payload = null;
            return frame;
        }
        catch (Exception e)
        {
            if (payload is { Length: > 0 })
            {
                ArrayPool<byte>.Shared.Return(payload);
            }

            throw Fail(e, "receive");
        }
        finally
        {
            Volatile.Write(ref _receiving, 0);
        }
    }

    /// <summary>
    /// Tells the peer this end sends no more frames (a FIN): its <see cref="ReceiveAsync"/>
    /// returns null once it has read every frame. Receiving goes on.
    /// </summary>
    public void CompleteSending()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException e)
        {
            throw Fail(e, "shutdown");
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _socket.Dispose();
        // A send still running owns the writer's buffer: then it is left to the GC rather
        // than returned to the pool while the kernel may still read it.
        if (Interlocked.CompareExchange(ref _sending, 1, 0) == 0)
        {
            _writer.Dispose();
        }
    }

    /// <summary>
    /// Options both ends set before connect or listen: the window scale is agreed in the SYN
    /// from the receive buffer of that moment, and accepted sockets inherit the listener's.
    /// </summary>
    internal static void Tune(Socket socket)
    {
        // The control frames (acks) are small and each is waited for.
        socket.NoDelay = true;
        ForceBuffer(socket, SysSocket.SO_SNDBUFFORCE);
        ForceBuffer(socket, SysSocket.SO_RCVBUFFORCE);
    }

    /// <summary>
    /// The FORCE variants (CAP_NET_ADMIN, which a node doing handovers holds for TCP_REPAIR)
    /// because plain SO_SNDBUF/SO_RCVBUF are capped at net.core.wmem_max/rmem_max, 208 KB on
    /// a stock Debian, and setting them turns autotuning off: the channel would get less than
    /// the 4-6 MB autotuning reaches. Without the capability (measured: as uid 65534 both
    /// stay at the defaults, 16 KB and 128 KB) the kernel's autotuning stays.
    /// </summary>
    private static void ForceBuffer(Socket socket, int option)
    {
        try
        {
            socket.SetRawSocketOption(SysSocket.SOL_SOCKET, option, BitConverter.GetBytes(SocketBufferSize));
        }
        catch (SocketException)
        {
        }
    }

    internal static async ValueTask SendAllAsync(Socket socket, ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        while (!bytes.IsEmpty)
        {
            var sent = await socket.SendAsync(bytes, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            bytes = bytes[sent..];
        }
    }

    /// <summary>
    /// The target's one-byte answer, or 0 bytes when it closed instead: a refused connection
    /// is closed with the token unread, which Linux turns into a reset rather than a FIN.
    /// </summary>
    private static async ValueTask<int> ReceiveAnswerAsync(Socket socket, byte[] answer, CancellationToken cancellationToken)
    {
        try
        {
            return await socket.ReceiveAsync(answer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            return 0;
        }
    }

    /// <summary>Reads until <paramref name="buffer"/> holds <paramref name="count"/> bytes or the peer closed: how many it holds.</summary>
    private async ValueTask<int> ReceiveAtLeastAsync(Memory<byte> buffer, int count, CancellationToken cancellationToken)
    {
        var got = 0;
        while (got < count)
        {
            var read = await _socket.ReceiveAsync(buffer[got..count], SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                break;
            }

            got += read;
        }

        return got;
    }

    internal static void WriteHeader(Span<byte> header, byte type, int length)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)length);
        header[4] = type;
    }

    private void BeginSend()
    {
        if (Interlocked.Exchange(ref _sending, 1) != 0)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            throw new InvalidOperationException("Another send is in progress on this state channel.");
        }
    }

    /// <summary>Closes the channel (its frame position is lost) and says what failed in one line.</summary>
    private Exception Fail(Exception e, string operation)
    {
        _socket.Dispose();
        return e switch
        {
            StateChannelException or OperationCanceledException => e,
            SocketException socket => new StateChannelException($"state channel with {RemoteEndPoint}: {operation} failed: {Describe(socket)}", socket),
            ObjectDisposedException => new StateChannelException($"state channel with {RemoteEndPoint}: {operation} on a closed channel", e),
            _ => e,
        };
    }

    private static string Describe(SocketException e) => e.SocketErrorCode switch
    {
        SocketError.ConnectionRefused => "connection refused (no offer open on that port)",
        SocketError.ConnectionReset => "connection reset by the peer",
        SocketError.AddressNotAvailable => "the local address is not on this host",
        _ => e.Message,
    };
}
