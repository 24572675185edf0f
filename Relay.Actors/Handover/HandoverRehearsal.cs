using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Relay.Actors.Handover;

/// <summary>
/// One handover of one loopback connection within this process, run once when a clustered node
/// starts: a state channel offered and connected, a socket put in repair mode and dumped, its
/// image written, sent, read and restored, the copy taken out of repair mode, and the bytes
/// each end had queued read on the other side. A node's first real handover otherwise ran all
/// of that code, and the kernel's repair paths, for the first time inside its pause (the first
/// handover of a pair was 1.5-3x the next ones even precompiled: ops/bench/RESULTS.md, "Live
/// handover"). It is also a self-test: a host on which the rehearsal fails will not hand
/// circuits over either, and the operator hears of it at start, not at the first handover.
/// Nothing leaves the host: every socket is on 127.0.0.1.
/// </summary>
internal static class HandoverRehearsal
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);

    /// <summary>The rehearsal's time, or a <see cref="HandoverRehearsalException"/> naming the step that failed.</summary>
    public static async Task<TimeSpan> RunAsync()
    {
        var clock = Stopwatch.StartNew();
        using var deadline = new CancellationTokenSource(Limit);
        var loopback = IPAddress.Loopback;
        try
        {
            using var offer = StateChannelOffer.Open(loopback, loopback, Limit);
            var accepting = offer.AcceptAsync(deadline.Token);
            using var source = await StateChannel.ConnectAsync(offer.Endpoint, offer.Token, loopback, cancellationToken: deadline.Token);
            using var target = await accepting;

            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(loopback, 0));
            listener.Listen(1);
            using var peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await peer.ConnectAsync(listener.LocalEndPoint!, deadline.Token);
            var moving = await listener.AcceptAsync(deadline.Token);
            listener.Close();

            // Bytes queued both ways, so the dump and the restore run their queue paths.
            byte[] toMoving = [1, 2, 3, 4, 5, 6, 7, 8];
            byte[] toPeer = [9, 10, 11, 12];
            await peer.SendAsync(toMoving, SocketFlags.None, deadline.Token);
            await moving.SendAsync(toPeer, SocketFlags.None, deadline.Token);
            await WaitForQueuedAsync(moving, toMoving.Length, deadline.Token);

            TcpRepair.EnterRepair(moving);
            var socket = TcpRepair.Dump(moving);
            var image = new CircuitImage
            {
                Id = 0,
                Route = "rehearsal",
                Node = "rehearsal",
                OpenedAt = DateTimeOffset.UtcNow,
                QuietMs = 0,
                BytesUp = 0,
                BytesDown = 0,
                ReadUp = 0,
                ReadDown = 0,
                Moves = 0,
                LastMovedAt = null,
                Upstream = "rehearsal",
                Client = socket.Remote,
                ProxiedDestination = null,
                Phase = 0,
                ClientSocket = socket,
                UpstreamSocket = socket,
                ToUpstream = ReadOnlyMemory<byte>.Empty,
                ToClient = ReadOnlyMemory<byte>.Empty,
            };
            await source.SendAsync(HandoverProtocol.Frames.Circuits, writer =>
            {
                CircuitImageFormat.WriteBatchHeader(writer, 1);
                CircuitImageFormat.Write(writer, image);
            }, deadline.Token);
            using var frame = await target.ReceiveAsync(deadline.Token)
                ?? throw new HandoverRehearsalException("the state channel ended before the image");
            var received = CircuitImageFormat.Read(frame.Payload.Span[CircuitImageFormat.BatchHeaderBytes..], out _);

            // The original goes without a packet, as on a source; its copy takes its place.
            TcpRepair.CloseSilently(moving);
            using var restored = TcpRepair.Restore(received.ClientSocket, out _);
            TcpRepair.LeaveRepair(restored, windowProbe: true);

            await ExpectAsync(restored, toMoving, "the restored socket's receive queue", deadline.Token);
            await ExpectAsync(peer, toPeer, "the bytes the moved socket had sent", deadline.Token);
            return clock.Elapsed;
        }
        catch (Exception e) when (e is SocketException or TcpRepairException or StateChannelException or IOException or FormatException
                                       or OperationCanceledException or ObjectDisposedException)
        {
            throw new HandoverRehearsalException(e.Message, e);
        }
    }

    /// <summary>Waits until <paramref name="count"/> bytes sit in the socket's receive queue (loopback delivers them at once, nearly always).</summary>
    private static async Task WaitForQueuedAsync(Socket socket, int count, CancellationToken cancellationToken)
    {
        while (socket.Available < count)
        {
            await Task.Delay(1, cancellationToken);
        }
    }

    private static async Task ExpectAsync(Socket socket, byte[] expected, string what, CancellationToken cancellationToken)
    {
        var buffer = new byte[expected.Length];
        var got = 0;
        while (got < expected.Length)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, cancellationToken);
            if (n == 0)
            {
                throw new HandoverRehearsalException($"{what}: the connection ended after {got} of {expected.Length} bytes");
            }

            got += n;
        }

        if (!buffer.AsSpan().SequenceEqual(expected))
        {
            throw new HandoverRehearsalException($"{what}: other bytes arrived than were sent");
        }
    }
}

/// <summary>The rehearsal failed; the message names the step.</summary>
public sealed class HandoverRehearsalException(string message, Exception? inner = null) : Exception(message, inner);
