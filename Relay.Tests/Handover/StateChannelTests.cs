using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Relay.Actors.Handover;
using Relay.Tests.Support;
using Xunit.Abstractions;

namespace Relay.Tests.Handover;

/// <summary>
/// The state channel on real loopback sockets: frames both ways byte-exact, and the offer
/// admitting only the expected member holding the token. 127.0.0.2 plays another host: Linux
/// routes all of 127.0.0.0/8 to lo, so a socket bound to it connects to 127.0.0.1 from there.
/// </summary>
public sealed class StateChannelTests(ITestOutputHelper output)
{
    private static readonly IPAddress Member = IPAddress.Loopback;
    private static readonly IPAddress Stranger = IPAddress.Parse("127.0.0.2");
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Frames_travel_both_ways_byte_exact_and_50_MB_in_1_MB_frames()
    {
        const int frameSize = 1024 * 1024;
        const int frames = 50;
        var image = new byte[frames * frameSize];
        new Random(15).NextBytes(image);

        using var offer = StateChannelOffer.Open(Member, Member, TimeSpan.FromSeconds(30));
        var accepting = offer.AcceptAsync();
        using var source = await StateChannel.ConnectAsync(offer.Endpoint, offer.Token, Member).WaitAsync(Bound);
        using var target = await accepting.WaitAsync(Bound);
        Assert.Equal(source.LocalEndPoint, target.RemoteEndPoint);

        // The target acks every frame while the source is still sending: both directions at once.
        var targetSide = Task.Run(async () =>
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var count = 0;
            var bytes = 0L;
            while (await target.ReceiveAsync() is { } frame)
            {
                using (frame)
                {
                    Assert.Equal((byte)(count % 2 == 0 ? 1 : 2), frame.Type);
                    hash.AppendData(frame.Payload.Span);
                    bytes += frame.Payload.Length;
                }

                var ack = new byte[8];
                BinaryPrimitives.WriteInt64LittleEndian(ack, ++count);
                await target.SendAsync(9, ack);
            }

            target.CompleteSending();
            return (count, bytes, Hash: hash.GetHashAndReset());
        });

        var acks = Task.Run(async () =>
        {
            var last = 0L;
            while (await source.ReceiveAsync() is { } frame)
            {
                using (frame)
                {
                    Assert.Equal(9, frame.Type);
                    var n = BinaryPrimitives.ReadInt64LittleEndian(frame.Payload.Span);
                    Assert.Equal(last + 1, n);
                    last = n;
                }
            }

            return last;
        });

        var clock = Stopwatch.StartNew();
        for (var i = 0; i < frames; i++)
        {
            var slice = image.AsMemory(i * frameSize, frameSize);
            if (i % 2 == 0)
            {
                // As a circuit image is written: straight into the channel's buffer, in pieces.
                await source.SendAsync(1, writer =>
                {
                    for (var at = 0; at < frameSize; at += 100_000)
                    {
                        var piece = slice.Span.Slice(at, Math.Min(100_000, frameSize - at));
                        piece.CopyTo(writer.GetSpan(piece.Length));
                        writer.Advance(piece.Length);
                    }
                });
            }
            else
            {
                await source.SendAsync(2, slice);
            }
        }

        source.CompleteSending();
        var received = await targetSide.WaitAsync(TimeSpan.FromSeconds(60));
        clock.Stop();
        Assert.Equal(frames, await acks.WaitAsync(Bound));

        Assert.Equal(frames, received.count);
        Assert.Equal(image.LongLength, received.bytes);
        Assert.Equal(SHA256.HashData(image), received.Hash);
        output.WriteLine($"50 MB in 1 MB frames over loopback: {clock.Elapsed.TotalMilliseconds:0.0} ms, {image.Length / 1e6 / clock.Elapsed.TotalSeconds:0} MB/s");
    }

    [Fact]
    public async Task A_connection_from_another_address_is_refused_even_with_the_token_and_the_member_still_gets_in()
    {
        var rejections = new ConcurrentQueue<StateChannelRejection>();
        using var offer = StateChannelOffer.Open(Member, Member, TimeSpan.FromSeconds(30), rejections.Enqueue);
        var accepting = offer.AcceptAsync();

        var refused = await Assert.ThrowsAsync<StateChannelException>(() => StateChannel.ConnectAsync(offer.Endpoint, offer.Token, Stranger).WaitAsync(Bound));
        Assert.Contains("without accepting the token", refused.Message);
        var rejection = Assert.Single(rejections);
        Assert.Equal(StateChannelRejectionKind.NotExpectedMember, rejection.Kind);
        Assert.Equal(Stranger, rejection.Peer.Address);
        Assert.Equal("not the expected member 127.0.0.1", rejection.Reason);
        Assert.False(accepting.IsCompleted);

        await AssertMemberGetsInAsync(offer, accepting);
        Assert.Equal(1, offer.RejectedCount);
    }

    [Fact]
    public async Task A_wrong_token_is_refused_and_the_member_with_the_right_one_still_gets_in()
    {
        var rejections = new ConcurrentQueue<StateChannelRejection>();
        using var offer = StateChannelOffer.Open(Member, Member, TimeSpan.FromSeconds(30), rejections.Enqueue);
        var accepting = offer.AcceptAsync();

        var wrong = offer.Token.ToArray();
        wrong[^1] ^= 1;
        await Assert.ThrowsAsync<StateChannelException>(() => StateChannel.ConnectAsync(offer.Endpoint, wrong, Member).WaitAsync(Bound));
        var rejection = Assert.Single(rejections);
        Assert.Equal(StateChannelRejectionKind.WrongToken, rejection.Kind);
        Assert.Equal(Member, rejection.Peer.Address);

        await AssertMemberGetsInAsync(offer, accepting);
    }

    [Fact]
    public async Task A_connection_that_sends_no_token_within_the_deadline_is_closed_and_reported()
    {
        var rejections = new ConcurrentQueue<StateChannelRejection>();
        using var offer = StateChannelOffer.Open(Member, Member, TimeSpan.FromSeconds(30), rejections.Enqueue);
        var accepting = offer.AcceptAsync();

        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await silent.ConnectAsync(offer.Endpoint);
        await silent.SendAsync(offer.Token[..10], SocketFlags.None);
        var clock = Stopwatch.StartNew();
        await Eventually.Holds(() => !rejections.IsEmpty, "the silent connection to be refused");
        clock.Stop();

        var rejection = Assert.Single(rejections);
        Assert.Equal(StateChannelRejectionKind.NoToken, rejection.Kind);
        Assert.Equal("no token within 2 s (10 of 32 bytes)", rejection.Reason);
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(1.8), TimeSpan.FromSeconds(5));
        Assert.Equal(0, await ReceiveOrResetAsync(silent));

        await AssertMemberGetsInAsync(offer, accepting);
    }

    [Fact]
    public async Task A_connection_waiting_for_its_token_does_not_hold_the_member_back()
    {
        using var offer = StateChannelOffer.Open(Member, Member, TimeSpan.FromSeconds(30));
        var accepting = offer.AcceptAsync();
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await silent.ConnectAsync(offer.Endpoint);
        await Task.Delay(50);

        var clock = Stopwatch.StartNew();
        await AssertMemberGetsInAsync(offer, accepting);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"the member got in after {clock.Elapsed.TotalMilliseconds:0} ms, behind a connection without a token");
        // The offer ended with the member's channel: the waiting connection is closed, not refused.
        Assert.Equal(0, await ReceiveOrResetAsync(silent));
        Assert.Equal(0, offer.RejectedCount);
    }

    [Fact]
    public async Task A_connection_that_closes_before_its_token_is_reported()
    {
        var rejections = new ConcurrentQueue<StateChannelRejection>();
        using var offer = StateChannelOffer.Open(Member, Member, TimeSpan.FromSeconds(30), rejections.Enqueue);
        var accepting = offer.AcceptAsync();
        using (var brief = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await brief.ConnectAsync(offer.Endpoint);
            await brief.SendAsync(offer.Token[..5], SocketFlags.None);
            brief.Shutdown(SocketShutdown.Send);
            await Eventually.Holds(() => !rejections.IsEmpty, "the connection to be reported");
        }

        var rejection = Assert.Single(rejections);
        Assert.Equal(StateChannelRejectionKind.NoToken, rejection.Kind);
        Assert.Equal("closed after 5 of the token's 32 bytes", rejection.Reason);
        await AssertMemberGetsInAsync(offer, accepting);
    }

    [Fact]
    public async Task The_bytes_behind_the_token_are_left_for_the_channel()
    {
        using var offer = StateChannelOffer.Open(Member, Member, TimeSpan.FromSeconds(30));
        var accepting = offer.AcceptAsync();
        using var raw = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await raw.ConnectAsync(offer.Endpoint);
        // Token and a first frame in one write, before the target answered: the admission
        // must read the token's bytes only.
        var bytes = new byte[StateChannelOffer.TokenLength + StateChannel.HeaderSize + 3];
        offer.Token.Span.CopyTo(bytes);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(StateChannelOffer.TokenLength), 3);
        bytes[StateChannelOffer.TokenLength + 4] = 7;
        "abc"u8.CopyTo(bytes.AsSpan(StateChannelOffer.TokenLength + StateChannel.HeaderSize));
        await raw.SendAsync(bytes, SocketFlags.None);

        using var target = await accepting.WaitAsync(Bound);
        using var frame = await target.ReceiveAsync().AsTask().WaitAsync(Bound);
        Assert.NotNull(frame);
        Assert.Equal(7, frame!.Type);
        Assert.Equal("abc"u8.ToArray(), frame.Payload.ToArray());
    }

    [Fact]
    public async Task A_frame_length_above_the_maximum_fails_with_a_clear_error_before_any_allocation()
    {
        using var offer = StateChannelOffer.Open(Member, Member, TimeSpan.FromSeconds(30));
        var accepting = offer.AcceptAsync();
        using var raw = await RawMemberAsync(offer);
        using var target = await accepting.WaitAsync(Bound);

        var header = new byte[StateChannel.HeaderSize];
        BinaryPrimitives.WriteUInt32LittleEndian(header, StateChannel.DefaultMaxFrameSize + 1u);
        await raw.SendAsync(header, SocketFlags.None);
        // Closed after the header: a receiver without the check would wait for the payload
        // and then fail for another reason.
        raw.Shutdown(SocketShutdown.Send);

        var error = await Assert.ThrowsAsync<StateChannelException>(() => target.ReceiveAsync().AsTask().WaitAsync(Bound));
        Assert.Equal(
            $"state channel from {raw.LocalEndPoint}: a frame of {StateChannel.DefaultMaxFrameSize + 1L} bytes exceeds the maximum of {StateChannel.DefaultMaxFrameSize} bytes (a corrupt stream, or not a state channel peer)",
            error.Message);
    }

    [Fact]
    public async Task A_peer_that_closes_in_the_middle_of_a_frame_fails_the_receive_with_a_clear_error()
    {
        using var offer = StateChannelOffer.Open(Member, Member, TimeSpan.FromSeconds(30));
        var accepting = offer.AcceptAsync();
        using var raw = await RawMemberAsync(offer);
        using var target = await accepting.WaitAsync(Bound);

        var partial = new byte[StateChannel.HeaderSize + 10];
        BinaryPrimitives.WriteUInt32LittleEndian(partial, 100);
        await raw.SendAsync(partial, SocketFlags.None);
        raw.Shutdown(SocketShutdown.Send);

        var error = await Assert.ThrowsAsync<StateChannelException>(() => target.ReceiveAsync().AsTask().WaitAsync(Bound));
        Assert.EndsWith("the peer closed after 10 of a frame's 100 bytes", error.Message);
    }

    [Fact]
    public async Task A_sender_cannot_send_a_frame_above_the_maximum_and_the_channel_stays_usable()
    {
        const int max = 256 * 1024;
        using var offer = StateChannelOffer.Open(Member, Member, TimeSpan.FromSeconds(30), maxFrameSize: max);
        var accepting = offer.AcceptAsync();
        using var source = await StateChannel.ConnectAsync(offer.Endpoint, offer.Token, Member, maxFrameSize: max).WaitAsync(Bound);
        using var target = await accepting.WaitAsync(Bound);

        await Assert.ThrowsAsync<ArgumentException>(() => source.SendAsync(1, new byte[max + 1]).AsTask());
        var grown = await Assert.ThrowsAsync<StateChannelException>(() => source.SendAsync(1, writer =>
        {
            // Written as a serializer does, in pieces, until past the maximum.
            for (var i = 0; i < 10; i++)
            {
                writer.GetSpan(40_000).Slice(0, 40_000).Fill(0xEE);
                writer.Advance(40_000);
            }
        }).AsTask());
        Assert.StartsWith($"a state channel frame carries at most {max} bytes", grown.Message);
        var asked = await Assert.ThrowsAsync<StateChannelException>(() => source.SendAsync(1, writer => writer.GetSpan(max + 1)).AsTask());
        Assert.StartsWith($"a state channel frame carries at most {max} bytes: 0 were written and {max + 1} more asked for", asked.Message);
        // The pool rounds its arrays up to a power of two: a writer that takes all the span it
        // is given writes past the maximum without asking for more.
        var given = 0;
        var greedy = await Assert.ThrowsAsync<StateChannelException>(() => source.SendAsync(1, writer =>
        {
            var span = writer.GetSpan(max);
            given = span.Length;
            writer.Advance(span.Length);
        }).AsTask());
        Assert.True(given > max, $"the writer gave {given} bytes for a frame of at most {max}: this case needs more");
        Assert.StartsWith($"a state channel frame carries at most {max} bytes", greedy.Message);

        var exact = new byte[max];
        exact.AsSpan().Fill(0x5A);
        await source.SendAsync(3, writer =>
        {
            exact.CopyTo(writer.GetSpan(max));
            writer.Advance(max);
        });
        using var frame = await target.ReceiveAsync().AsTask().WaitAsync(Bound);
        Assert.Equal(3, frame!.Type);
        Assert.True(frame.Payload.Span.SequenceEqual(exact), "the frame after the refused ones arrived altered");
    }

    [Fact]
    public async Task A_target_that_answers_another_version_is_refused_at_connect()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(Member, 0));
        listener.Listen(1);
        var later = Task.Run(async () =>
        {
            using var peer = await listener.AcceptAsync();
            var token = new byte[StateChannelOffer.TokenLength];
            await peer.ReceiveAsync(token, SocketFlags.None);
            await peer.SendAsync(new byte[] { 2 }, SocketFlags.None);
            await peer.ReceiveAsync(new byte[1], SocketFlags.None);
        });

        var error = await Assert.ThrowsAsync<StateChannelException>(
            () => StateChannel.ConnectAsync((IPEndPoint)listener.LocalEndPoint!, new byte[StateChannelOffer.TokenLength]).WaitAsync(Bound));
        Assert.EndsWith("the target speaks version 2 of the channel, this node 1", error.Message);
        await later.WaitAsync(Bound);
    }

    [Fact]
    public async Task An_expired_offer_fails_its_accept_and_refuses_connections()
    {
        var offer = StateChannelOffer.Open(Member, Member, TimeSpan.FromMilliseconds(300));
        using var _ = offer;
        var clock = Stopwatch.StartNew();

        var expired = await Assert.ThrowsAsync<TimeoutException>(() => offer.AcceptAsync().WaitAsync(Bound));
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(5));
        Assert.Equal($"state channel offer on {offer.Endpoint}: no connection from 127.0.0.1 with the token within 0.3 s (0 refused)", expired.Message);

        var refused = await Assert.ThrowsAsync<StateChannelException>(() => StateChannel.ConnectAsync(offer.Endpoint, offer.Token, Member).WaitAsync(Bound));
        Assert.Equal(SocketError.ConnectionRefused, Assert.IsType<SocketException>(refused.InnerException).SocketErrorCode);
    }

    [Fact]
    public async Task An_offer_nobody_waits_on_stops_listening_at_its_expiry()
    {
        using var offer = StateChannelOffer.Open(Member, Member, TimeSpan.FromMilliseconds(500));
        Assert.Null(await TryConnectAsync(offer.Endpoint));

        await Eventually.Holds(async () => await TryConnectAsync(offer.Endpoint) == SocketError.ConnectionRefused, "connects to be refused after the expiry");
    }

    [Fact]
    public async Task Dispose_frees_the_port_and_ends_a_pending_accept()
    {
        var offer = StateChannelOffer.Open(Member, Member, TimeSpan.FromSeconds(30));
        var accepting = offer.AcceptAsync();
        offer.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => accepting.WaitAsync(Bound));
        // Bound again without SO_REUSEADDR: only a closed listener leaves the port free.
        using var again = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        again.Bind(offer.Endpoint);
        again.Listen(1);
    }

    /// <summary>The right member connects with the right token, and a frame crosses each way.</summary>
    private static async Task AssertMemberGetsInAsync(StateChannelOffer offer, Task<StateChannel> accepting)
    {
        using var source = await StateChannel.ConnectAsync(offer.Endpoint, offer.Token, Member).WaitAsync(Bound);
        using var target = await accepting.WaitAsync(Bound);
        Assert.Equal(source.LocalEndPoint, target.RemoteEndPoint);

        await source.SendAsync(4, "ping"u8.ToArray());
        using (var ping = await target.ReceiveAsync().AsTask().WaitAsync(Bound))
        {
            Assert.Equal("ping"u8.ToArray(), ping!.Payload.ToArray());
        }

        await target.SendAsync(5, "pong"u8.ToArray());
        using var pong = await source.ReceiveAsync().AsTask().WaitAsync(Bound);
        Assert.Equal("pong"u8.ToArray(), pong!.Payload.ToArray());
    }

    /// <summary>A member speaking the wire format by hand: the token out, the version byte back.</summary>
    private static async Task<Socket> RawMemberAsync(StateChannelOffer offer)
    {
        var raw = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await raw.ConnectAsync(offer.Endpoint);
        await raw.SendAsync(offer.Token, SocketFlags.None);
        var version = new byte[1];
        Assert.Equal(1, await raw.ReceiveAsync(version, SocketFlags.None).WaitAsync(Bound));
        Assert.Equal(1, version[0]);
        return raw;
    }

    /// <summary>0 when the peer closed (a FIN or a reset); fails if it sent anything.</summary>
    private static async Task<int> ReceiveOrResetAsync(Socket socket)
    {
        try
        {
            return await socket.ReceiveAsync(new byte[64], SocketFlags.None).WaitAsync(Bound);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            return 0;
        }
    }

    private static async Task<SocketError?> TryConnectAsync(IPEndPoint endpoint)
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await probe.ConnectAsync(endpoint).WaitAsync(Bound);
            return null;
        }
        catch (SocketException e)
        {
            return e.SocketErrorCode;
        }
    }
}
