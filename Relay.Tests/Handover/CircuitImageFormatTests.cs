using System.Buffers;
using System.Net;
using Relay.Actors.Handover;
using Relay.Actors.Tuning;

namespace Relay.Tests.Handover;

/// <summary>
/// The binary circuit image: every field survives a round trip through a buffer writer, a
/// stream and a batch read image by image; anything that is not a well-formed frame is a
/// <see cref="FormatException"/> (never another exception, a hang or a huge allocation).
/// </summary>
public sealed class CircuitImageFormatTests
{
    [Fact]
    public void Every_field_of_an_ipv4_circuit_with_empty_queues_survives_a_round_trip()
    {
        var image = Sample(Socket(v6: false, queued: 0), Socket(v6: false, queued: 0)) with { ToUpstream = default, ToClient = default, LastMovedAt = null, ProxiedDestination = null };

        AssertSame(image, RoundTrip(image));
    }

    [Fact]
    public void Every_field_of_an_ipv6_circuit_with_multi_megabyte_queues_survives_a_round_trip()
    {
        var image = Sample(Socket(v6: true, queued: 3 << 20), Socket(v6: true, queued: 2 << 20));

        AssertSame(image, RoundTrip(image));
    }

    [Fact]
    public void Half_closed_and_dual_stack_sockets_keep_their_state()
    {
        var client = Socket(v6: false, queued: 100) with
        {
            Local = new IPEndPoint(IPAddress.Parse("::ffff:198.18.0.10"), 7000),
            Remote = new IPEndPoint(IPAddress.Parse("::ffff:198.18.0.1"), 50000),
            State = KernelTcpState.CloseWait,
            HalfClose = TcpHalfClose.PeerFinReceived,
        };
        var upstream = Socket(v6: false, queued: 0) with { State = KernelTcpState.FinWait2, HalfClose = TcpHalfClose.FinSent | TcpHalfClose.FinAcknowledged, UnsentLength = 0 };

        AssertSame(Sample(client, upstream), RoundTrip(Sample(client, upstream)));
    }

    [Fact]
    public async Task A_batch_is_read_image_by_image_from_a_stream_synchronously_and_asynchronously()
    {
        var images = Enumerable.Range(0, 5).Select(i => Sample(Socket(i % 2 == 0, queued: i * 1000), Socket(false, queued: 7)) with { Id = i }).ToList();
        using var stream = new MemoryStream();
        CircuitImageFormat.WriteBatch(stream, images);

        foreach (var async in new[] { false, true })
        {
            stream.Position = 0;
            var reader = new CircuitImageReader(new TrickleStream(stream, chunk: 333));
            Assert.Null(reader.Count);
            var read = new List<CircuitImage>();
            for (var i = 0; i < 10; i++)
            {
                var next = async ? await reader.ReadNextAsync() : reader.ReadNext();
                if (next is null)
                {
                    break;
                }

                read.Add(next);
            }

            Assert.Equal(5, reader.Count);
            Assert.Equal(5, read.Count);
            for (var i = 0; i < 5; i++)
            {
                AssertSame(images[i], read[i]);
            }
        }
    }

    [Fact]
    public void The_buffer_writer_and_the_stream_write_the_same_bytes()
    {
        var image = Sample(Socket(true, 5000), Socket(false, 70_000));
        var buffer = new ArrayBufferWriter<byte>();
        CircuitImageFormat.WriteBatchHeader(buffer, 1);
        CircuitImageFormat.Write(buffer, image);
        using var stream = new MemoryStream();
        CircuitImageFormat.WriteBatch(stream, [image]);

        Assert.Equal(stream.ToArray(), buffer.WrittenSpan.ToArray());
        Assert.Equal("RLCB"u8.ToArray(), buffer.WrittenSpan[..4].ToArray());
        Assert.Equal(CircuitImageFormat.Version, buffer.WrittenSpan[4]);
        Assert.Equal("RLCI"u8.ToArray(), buffer.WrittenSpan[9..13].ToArray());
    }

    [Fact]
    public void Every_truncation_of_a_frame_is_a_format_exception_from_a_span_and_from_a_stream()
    {
        var frame = Frame(Sample(Socket(true, 40), Socket(false, 30)) with { ToClient = Bytes(50, 5) });
        for (var length = 0; length < frame.Length; length++)
        {
            var prefix = frame[..length];
            var fromSpan = Assert.Throws<FormatException>(() => CircuitImageFormat.Read(prefix, out _));
            Assert.Contains("truncated", fromSpan.Message);
            var fromStream = Assert.Throws<FormatException>(() => CircuitImageFormat.Read(new MemoryStream(prefix)));
            Assert.Contains("truncated", fromStream.Message);
        }
    }

    [Fact]
    public void Random_bytes_are_a_format_exception()
    {
        var random = new Random(15);
        for (var i = 0; i < 2000; i++)
        {
            var garbage = new byte[random.Next(0, 400)];
            random.NextBytes(garbage);
            Assert.Throws<FormatException>(() => CircuitImageFormat.Read(garbage, out _));
            Assert.Throws<FormatException>(() => new CircuitImageReader(new MemoryStream(garbage)).ReadNext());
        }
    }

    [Fact]
    public void Every_single_byte_corruption_of_the_fixed_fields_is_read_or_refused_but_never_crashes()
    {
        var image = Sample(Socket(true, 12), Socket(false, 9)) with { ToClient = Bytes(50, 5) };
        var frame = Frame(image);
        var blocksStart = frame.Length - (4 * 6 + image.ClientSocket.ReceiveQueue.Length + image.ClientSocket.SendQueue.Length
            + image.UpstreamSocket.ReceiveQueue.Length + image.UpstreamSocket.SendQueue.Length + image.ToUpstream.Length + image.ToClient.Length);
        for (var at = 0; at < blocksStart + 4; at++)
        {
            foreach (var value in new byte[] { 0x00, 0x02, 0x07, 0x80, 0xFF })
            {
                var corrupt = (byte[])frame.Clone();
                corrupt[at] = value;
                try
                {
                    CircuitImageFormat.Read(corrupt, out _);
                }
                catch (FormatException)
                {
                }
            }
        }
    }

    [Theory]
    [InlineData(0, (byte)'X', "not one (magic 584C4349")]
    [InlineData(4, (byte)1, "version 1, this relay reads version 2")]
    public void A_wrong_magic_or_version_is_named(int at, byte value, string expected)
    {
        var frame = Frame(Sample(Socket(false, 1), Socket(false, 1)));
        frame[at] = value;

        Assert.Contains(expected, Assert.Throws<FormatException>(() => CircuitImageFormat.Read(frame, out _)).Message);
    }

    /// <summary>The phase byte says how far each direction had ended; one no live circuit can be in is refused both ways.</summary>
    [Theory]
    [InlineData(0b1010, "both directions had ended")]
    [InlineData(0b0011, "is not two direction ends")]
    [InlineData(0b10000, "is not two direction ends")]
    public void A_phase_no_live_circuit_can_be_in_is_refused_by_the_writer_and_the_reader(byte phase, string expected)
    {
        var image = Sample(Socket(false, 1), Socket(false, 1)) with { Phase = phase };
        Assert.Contains(expected, Assert.Throws<ArgumentException>(() => Frame(image)).Message);

        // The phase's offset: the one byte in which two frames differing only in phase differ.
        var frame = Frame(image with { Phase = 0 });
        var at = frame.AsSpan().CommonPrefixLength(Frame(image with { Phase = 1 }));
        frame[at] = phase;
        Assert.Contains(expected, Assert.Throws<FormatException>(() => CircuitImageFormat.Read(frame, out _)).Message);
    }

    [Fact]
    public void A_tuple_list_of_both_families_survives_a_round_trip_and_a_short_or_padded_one_is_refused()
    {
        TcpTuple[] tuples =
        [
            new(IPEndPoint.Parse("198.18.0.10:7000"), IPEndPoint.Parse("198.18.0.1:40001")),
            new(IPEndPoint.Parse("198.18.1.10:41234"), IPEndPoint.Parse("198.18.1.2:9000")),
            new(IPEndPoint.Parse("[2001:db8::10]:7000"), IPEndPoint.Parse("[2001:db8::1]:40002")),
        ];
        var writer = new ArrayBufferWriter<byte>();
        CircuitImageFormat.WriteTuples(writer, tuples);
        var bytes = writer.WrittenSpan.ToArray();
        Assert.Equal(tuples, CircuitImageFormat.ReadTuples(bytes));

        var empty = new ArrayBufferWriter<byte>();
        CircuitImageFormat.WriteTuples(empty, []);
        Assert.Empty(CircuitImageFormat.ReadTuples(empty.WrittenSpan));

        for (var length = 0; length < bytes.Length; length++)
        {
            Assert.Throws<FormatException>(() => CircuitImageFormat.ReadTuples(bytes.AsSpan(0, length)));
        }

        Assert.Contains("bytes after its 3 tuples", Assert.Throws<FormatException>(() => CircuitImageFormat.ReadTuples([.. bytes, 0])).Message);
        var huge = bytes.ToArray();
        BitConverter.TryWriteBytes(huge.AsSpan(5), uint.MaxValue);
        Assert.Contains("cannot fit", Assert.Throws<FormatException>(() => CircuitImageFormat.ReadTuples(huge)).Message);
    }

    [Fact]
    public void A_huge_length_is_refused_or_read_only_as_far_as_bytes_arrive()
    {
        var header = new byte[9];
        "RLCI"u8.CopyTo(header);
        header[4] = CircuitImageFormat.Version;
        BitConverter.TryWriteBytes(header.AsSpan(5), uint.MaxValue);
        Assert.Contains("over the 1073741824-byte limit", Assert.Throws<FormatException>(() => CircuitImageFormat.Read(header, out _)).Message);

        // Just under the limit, then a trickle: the reader fails at the stream's end, having
        // allocated for the bytes that came, not the gigabyte announced.
        BitConverter.TryWriteBytes(header.AsSpan(5), (uint)CircuitImageFormat.MaxBodyBytes);
        var stream = new MemoryStream([.. header, .. new byte[1000]]);
        var before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Contains("truncated", Assert.Throws<FormatException>(() => CircuitImageFormat.Read(stream)).Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 64 << 20, "allocated for the announced length");

        var batch = new byte[9];
        "RLCB"u8.CopyTo(batch);
        batch[4] = CircuitImageFormat.Version;
        BitConverter.TryWriteBytes(batch.AsSpan(5), uint.MaxValue);
        Assert.Contains("4294967295 images announced", Assert.Throws<FormatException>(() => new CircuitImageReader(new MemoryStream(batch)).ReadNext()).Message);
    }

    [Fact]
    public void A_block_longer_than_the_body_or_bytes_after_the_last_block_are_refused()
    {
        var image = Sample(Socket(false, 0), Socket(false, 0)) with { ToUpstream = default, ToClient = new byte[] { 1, 2, 3 } };
        var frame = Frame(image);
        var longBlock = (byte[])frame.Clone();
        BitConverter.TryWriteBytes(longBlock.AsSpan(frame.Length - 7), 4u); // to-client's length: 4, 3 present
        Assert.Contains("to-client bytes: a block of 4 bytes", Assert.Throws<FormatException>(() => CircuitImageFormat.Read(longBlock, out _)).Message);

        var trailing = new byte[frame.Length + 1];
        frame.CopyTo(trailing, 0);
        BitConverter.TryWriteBytes(trailing.AsSpan(5), BitConverter.ToUInt32(frame, 5) + 1);
        Assert.Contains("1 bytes after the last block", Assert.Throws<FormatException>(() => CircuitImageFormat.Read(trailing, out _)).Message);
    }

    [Fact]
    public void An_image_restore_could_not_rebuild_is_refused_by_the_writer_and_the_reader()
    {
        var bad = Sample(Socket(false, 10) with { UnsentLength = 11 }, Socket(false, 0));
        var written = Assert.Throws<ArgumentException>(() => CircuitImageFormat.Write(new ArrayBufferWriter<byte>(), bad));
        Assert.Contains("11 unsent bytes in a send queue of 10", written.Message);

        // The same inconsistency arriving from another node: patch the unsent length in a valid frame.
        var good = Sample(Socket(false, 10) with { UnsentLength = 10 }, Socket(false, 0));
        var frame = Frame(good);
        var at = IndexOf(frame, BitConverter.GetBytes(10), after: 100);
        frame[at] = 11;
        Assert.Contains("11 unsent bytes in a send queue of 10", Assert.Throws<FormatException>(() => CircuitImageFormat.Read(frame, out _)).Message);

        var restore = Assert.Throws<TcpRepairException>(() => TcpRepair.Restore(bad.ClientSocket, out _));
        Assert.Equal("restore 198.18.0.10:7000 -> 198.18.0.1:50000: 11 unsent bytes in a send queue of 10", restore.Message);
    }

    [Fact]
    public void Strings_too_long_for_the_format_are_refused_by_the_writer()
    {
        var image = Sample(Socket(false, 0), Socket(false, 0)) with { Upstream = new string('x', 70_000) };

        Assert.Contains("Upstream: 70000 bytes of UTF-8", Assert.Throws<ArgumentException>(() => CircuitImageFormat.Write(new ArrayBufferWriter<byte>(), image)).Message);
    }

    internal static CircuitImage Sample(TcpSocketImage client, TcpSocketImage upstream) => new()
    {
        Id = 0x0102030405060708,
        Route = "web-ä",
        Node = "relay-a",
        OpenedAt = new DateTimeOffset(2026, 3, 1, 12, 30, 15, 123, TimeSpan.FromHours(2)).AddTicks(4567),
        QuietMs = 1234,
        BytesUp = 40L << 40,
        BytesDown = 3,
        ReadUp = long.MaxValue,
        ReadDown = 0,
        Moves = 2,
        LastMovedAt = new DateTimeOffset(2026, 3, 1, 13, 0, 0, TimeSpan.FromMinutes(-330)),
        Upstream = "backend-1 (198.18.1.2:8000)",
        Client = new IPEndPoint(IPAddress.Parse("2001:2::7"), 61000),
        ProxiedDestination = new IPEndPoint(IPAddress.Parse("198.18.0.100"), 443),
        Phase = 5,
        ClientSocket = client,
        UpstreamSocket = upstream,
        ToUpstream = Bytes(77, 3),
        ToClient = Bytes(100_000, 4),
    };

    private static TcpSocketImage Socket(bool v6, int queued) => new()
    {
        Local = v6 ? new IPEndPoint(IPAddress.Parse("fe80::1%3"), 7000) : new IPEndPoint(IPAddress.Parse("198.18.0.10"), 7000),
        Remote = v6 ? new IPEndPoint(IPAddress.Parse("fe80::2%3"), 50000) : new IPEndPoint(IPAddress.Parse("198.18.0.1"), 50000),
        State = KernelTcpState.Established,
        HalfClose = TcpHalfClose.None,
        SendSequence = 0xFFFFFFF0,
        ReceiveSequence = 12345,
        SendQueue = Bytes(queued, 1),
        UnsentLength = queued / 3,
        ReceiveQueue = Bytes(queued / 2 + 1, 2),
        MaxSegment = 1448,
        Options = 7,
        SendWindowScale = 7,
        ReceiveWindowScale = 9,
        Timestamp = 0xDEADBEEF,
        Window = new TcpRepairWindow(1, 2, 3, 4, uint.MaxValue),
        NoDelay = true,
        SendBuffer = 87040,
        ReceiveBuffer = 131072,
    };

    private static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static byte[] Frame(CircuitImage image)
    {
        var buffer = new ArrayBufferWriter<byte>();
        CircuitImageFormat.Write(buffer, image);
        return buffer.WrittenSpan.ToArray();
    }

    private static CircuitImage RoundTrip(CircuitImage image)
    {
        var frame = Frame(image);
        var fromSpan = CircuitImageFormat.Read(frame, out var consumed);
        Assert.Equal(frame.Length, consumed);
        frame.AsSpan().Clear(); // the span reader copied: the image does not alias the input
        AssertSame(image, fromSpan);

        using var stream = new MemoryStream();
        CircuitImageFormat.Write(stream, image);
        stream.Position = 0;
        return CircuitImageFormat.Read(stream);
    }

    /// <summary>Field by field: records compare byte blocks by reference and times by instant only.</summary>
    private static void AssertSame(CircuitImage expected, CircuitImage actual)
    {
        Assert.Equal(Blockless(expected), Blockless(actual));
        Assert.Equal(expected.OpenedAt.Offset, actual.OpenedAt.Offset);
        Assert.Equal(expected.LastMovedAt?.Offset, actual.LastMovedAt?.Offset);
        Assert.Equal(Scope(expected.ClientSocket.Local), Scope(actual.ClientSocket.Local));
        Assert.Equal(Scope(expected.UpstreamSocket.Remote), Scope(actual.UpstreamSocket.Remote));
        foreach (var (e, a) in new[]
                 {
                     (expected.ToUpstream, actual.ToUpstream), (expected.ToClient, actual.ToClient),
                     (expected.ClientSocket.SendQueue, actual.ClientSocket.SendQueue), (expected.ClientSocket.ReceiveQueue, actual.ClientSocket.ReceiveQueue),
                     (expected.UpstreamSocket.SendQueue, actual.UpstreamSocket.SendQueue), (expected.UpstreamSocket.ReceiveQueue, actual.UpstreamSocket.ReceiveQueue),
                 })
        {
            Assert.True(e.Span.SequenceEqual(a.Span), $"a block of {e.Length} bytes came back as {a.Length} different ones");
        }
    }

    private static long Scope(IPEndPoint endpoint) =>
        endpoint.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? endpoint.Address.ScopeId : -1;

    private static CircuitImage Blockless(CircuitImage image) => image with
    {
        ToUpstream = default,
        ToClient = default,
        ClientSocket = image.ClientSocket with { SendQueue = default, ReceiveQueue = default },
        UpstreamSocket = image.UpstreamSocket with { SendQueue = default, ReceiveQueue = default },
    };

    private static int IndexOf(byte[] haystack, byte[] needle, int after)
    {
        var at = haystack.AsSpan(after).IndexOf(needle);
        Assert.True(at >= 0);
        return after + at;
    }

    /// <summary>A stream that returns at most <paramref name="chunk"/> bytes per read, as a socket does.</summary>
    private sealed class TrickleStream(Stream inner, int chunk) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, Math.Min(count, chunk));

        public override int Read(Span<byte> buffer) => inner.Read(buffer[..Math.Min(buffer.Length, chunk)]);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            inner.ReadAsync(buffer[..Math.Min(buffer.Length, chunk)], cancellationToken);

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
