using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Relay.Actors.Tuning;

namespace Relay.Actors.Handover;

/// <summary>
/// The binary form of <see cref="CircuitImage"/>s on the state channel. Binary because the
/// queues are the bulk of a handover: 1.8 MB of queues as JSON/base64 took 40-50 ms to
/// serialize in the prototype, time every frozen circuit waits. Little-endian, no padding.
/// <para>
/// A frame is one image: magic "RLCI", a version byte, the body's length (u32), the body. The
/// body holds the fixed fields first (strings as u16 length + UTF-8, endpoints as family 4 or
/// 6 + address + port [+ IPv6 scope id], times as UTC ticks + offset minutes, optional
/// fields after a presence byte), then six byte blocks, each a u32 length and its bytes:
/// client receive and send queue, upstream receive and send queue, to-upstream, to-client.
/// A batch is a header (magic "RLCB", version, u32 count) followed by that many frames, so
/// the target can restore each circuit as its frame arrives (<see cref="CircuitImageReader"/>).
/// </para>
/// Reading never trusts a length: it is checked against the bytes present (or capped, from a
/// stream, and the buffer grows only as bytes really arrive), and any inconsistency is a
/// <see cref="FormatException"/> saying what was wrong where.
/// </summary>
public static class CircuitImageFormat
{
    /// <summary>
    /// The version this code writes and the only one it reads. Version 2: the phase byte says
    /// how far each direction had ended (<see cref="CircuitImage.Phase"/>), so a half-closed
    /// circuit moves; a version-1 reader, which took it for established, refuses the frame.
    /// </summary>
    public const byte Version = 2;

    /// <summary>Bytes before a frame's body: magic, version, body length.</summary>
    public const int FrameHeaderBytes = 9;

    /// <summary>Bytes of a batch header: magic, version, count.</summary>
    public const int BatchHeaderBytes = 9;

    /// <summary>
    /// The largest body read (1 GiB): a circuit's four kernel queues and two relay buffers,
    /// with room for HPC buffer tuning (tcp_rmem/tcp_wmem maxima of 128-256 MiB).
    /// </summary>
    public const int MaxBodyBytes = 1 << 30;

    /// <summary>The most images one batch may announce.</summary>
    public const int MaxBatchCount = 1 << 20;

    internal static ReadOnlySpan<byte> FrameMagic => "RLCI"u8;

    internal static ReadOnlySpan<byte> BatchMagic => "RLCB"u8;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Appends one frame to <paramref name="output"/>.</summary>
    public static void Write(IBufferWriter<byte> output, CircuitImage image)
    {
        ArgumentNullException.ThrowIfNull(output);
        WriteFrame(new BufferSink(output), image);
    }

    /// <summary>Writes one frame to <paramref name="output"/>: the fixed fields in one write, each block straight from its memory.</summary>
    public static void Write(Stream output, CircuitImage image)
    {
        ArgumentNullException.ThrowIfNull(output);
        WriteFrame(new StreamSink(output), image);
    }

    /// <summary>Appends a batch header announcing <paramref name="count"/> frames.</summary>
    public static void WriteBatchHeader(IBufferWriter<byte> output, int count)
    {
        ArgumentNullException.ThrowIfNull(output);
        Span<byte> header = stackalloc byte[BatchHeaderBytes];
        FillBatchHeader(header, count);
        output.Write(header);
    }

    /// <summary>Writes a batch header announcing <paramref name="count"/> frames.</summary>
    public static void WriteBatchHeader(Stream output, int count)
    {
        ArgumentNullException.ThrowIfNull(output);
        Span<byte> header = stackalloc byte[BatchHeaderBytes];
        FillBatchHeader(header, count);
        output.Write(header);
    }

    /// <summary>A batch header and a frame per image.</summary>
    public static void WriteBatch(Stream output, IReadOnlyCollection<CircuitImage> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        WriteBatchHeader(output, images.Count);
        foreach (var image in images)
        {
            Write(output, image);
        }
    }

    /// <summary>
    /// Reads the frame at the start of <paramref name="input"/>; <paramref name="consumed"/> is
    /// its length. The image's byte blocks are copied (one array for the frame), so
    /// <paramref name="input"/> may be reused afterwards.
    /// </summary>
    /// <exception cref="FormatException">Not a frame of this version, truncated, or inconsistent.</exception>
    public static CircuitImage Read(ReadOnlySpan<byte> input, out int consumed)
    {
        var length = ReadFrameHeader(input);
        if (length > input.Length - FrameHeaderBytes)
        {
            throw new FormatException($"circuit image: truncated: the body is {length} bytes, {input.Length - FrameHeaderBytes} are present");
        }

        var body = input.Slice(FrameHeaderBytes, length).ToArray();
        consumed = FrameHeaderBytes + length;
        return ParseBody(body);
    }

    /// <summary>Reads one frame from <paramref name="input"/> (not a batch header).</summary>
    /// <exception cref="FormatException">Not a frame of this version, truncated, or inconsistent.</exception>
    public static CircuitImage Read(Stream input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return ReadFrameAsync(input, sync: true, CancellationToken.None).GetAwaiter().GetResult();
    }

    internal static int ReadBatchHeader(ReadOnlySpan<byte> header)
    {
        CheckMagicAndVersion(header, BatchMagic, "circuit image batch");
        var count = BinaryPrimitives.ReadUInt32LittleEndian(header[5..]);
        if (count > MaxBatchCount)
        {
            throw new FormatException($"circuit image batch: {count} images announced, at most {MaxBatchCount} are read");
        }

        return (int)count;
    }

    /// <summary>One frame from a stream; with <paramref name="sync"/> every read is synchronous and so is the returned task.</summary>
    internal static async ValueTask<CircuitImage> ReadFrameAsync(Stream input, bool sync, CancellationToken cancellationToken)
    {
        var header = new byte[FrameHeaderBytes];
        await ReadExactlyAsync(input, header, sync, "the frame header", cancellationToken).ConfigureAwait(false);
        var length = ReadFrameHeader(header);
        // Grow the buffer as bytes arrive rather than trust the length: a corrupt or hostile
        // length then costs at most twice the bytes really sent, not a gigabyte up front.
        // Uninitialized: every byte is read into before it is parsed.
        var body = GC.AllocateUninitializedArray<byte>(Math.Min(length, 16 << 20));
        var filled = 0;
        while (filled < length)
        {
            if (filled == body.Length)
            {
                Array.Resize(ref body, (int)Math.Min(length, 2L * body.Length));
            }

            var read = sync
                ? input.Read(body, filled, body.Length - filled)
                : await input.ReadAsync(body.AsMemory(filled), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new FormatException($"circuit image: truncated: the stream ended after {filled} of the body's {length} bytes");
            }

            filled += read;
        }

        return ParseBody(body);
    }

    /// <summary>Fills <paramref name="buffer"/> or throws a FormatException naming <paramref name="what"/> if the stream ends first.</summary>
    internal static async ValueTask ReadExactlyAsync(Stream input, Memory<byte> buffer, bool sync, string what, CancellationToken cancellationToken)
    {
        var filled = 0;
        while (filled < buffer.Length)
        {
            var read = sync
                ? input.Read(buffer.Span[filled..])
                : await input.ReadAsync(buffer[filled..], cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new FormatException($"circuit image: truncated: the stream ended after {filled} of the {buffer.Length} bytes of {what}");
            }

            filled += read;
        }
    }

    internal static ReadOnlySpan<byte> TuplesMagic => "RLCT"u8;

    /// <summary>
    /// Appends a list of 4-tuples (magic "RLCT", version, u32 count, then each tuple's local and
    /// remote endpoint): the connections the target must drop before it takes the addresses,
    /// for circuits whose images come after the commit.
    /// </summary>
    public static void WriteTuples(IBufferWriter<byte> output, IReadOnlyList<TcpTuple> tuples)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(tuples.Count, MaxBatchCount * 2);
        var size = 9;
        foreach (var tuple in tuples)
        {
            size += EndPointBytes(tuple.Local) + EndPointBytes(tuple.Remote);
        }

        var span = output.GetSpan(size)[..size];
        TuplesMagic.CopyTo(span);
        span[4] = Version;
        BinaryPrimitives.WriteUInt32LittleEndian(span[5..], (uint)tuples.Count);
        var writer = new SpanWriter(span[9..]);
        foreach (var tuple in tuples)
        {
            writer.EndPoint(tuple.Local);
            writer.EndPoint(tuple.Remote);
        }

        output.Advance(size);
    }

    /// <summary>Reads what <see cref="WriteTuples"/> wrote; a count or length that does not match the bytes is a <see cref="FormatException"/>.</summary>
    public static TcpTuple[] ReadTuples(ReadOnlySpan<byte> input)
    {
        CheckMagicAndVersion(input, TuplesMagic, "tuple list");
        var count = BinaryPrimitives.ReadUInt32LittleEndian(input[5..]);
        // Each tuple takes at least 14 bytes: a count the bytes cannot hold is refused before any allocation.
        if (count > (uint)(input.Length - 9) / 14)
        {
            throw new FormatException($"tuple list: {count} tuples cannot fit in {input.Length - 9} bytes");
        }

        var reader = new SpanReader(input[9..]);
        var tuples = new TcpTuple[count];
        for (var i = 0; i < tuples.Length; i++)
        {
            tuples[i] = new TcpTuple(reader.EndPoint("tuple local"), reader.EndPoint("tuple remote"));
        }

        if (reader.Position != input.Length - 9)
        {
            throw new FormatException($"tuple list: {input.Length - 9 - reader.Position} bytes after its {count} tuples");
        }

        return tuples;
    }

    private static int ReadFrameHeader(ReadOnlySpan<byte> input)
    {
        CheckMagicAndVersion(input, FrameMagic, "circuit image");
        var length = BinaryPrimitives.ReadUInt32LittleEndian(input[5..]);
        if (length > MaxBodyBytes)
        {
            throw new FormatException($"circuit image: a body of {length} bytes is over the {MaxBodyBytes}-byte limit");
        }

        return (int)length;
    }

    private static void CheckMagicAndVersion(ReadOnlySpan<byte> input, ReadOnlySpan<byte> magic, string what)
    {
        if (input.Length < 9)
        {
            throw new FormatException($"{what}: truncated: {input.Length} bytes, the header alone is 9");
        }

        if (!input[..4].SequenceEqual(magic))
        {
            throw new FormatException($"{what}: not one (magic {Convert.ToHexString(input[..4])}, expected {Convert.ToHexString(magic)} \"{Encoding.ASCII.GetString(magic)}\")");
        }

        if (input[4] != Version)
        {
            throw new FormatException($"{what}: version {input[4]}, this relay reads version {Version}");
        }
    }

    private static void FillBatchHeader(Span<byte> header, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, MaxBatchCount);
        BatchMagic.CopyTo(header);
        header[4] = Version;
        BinaryPrimitives.WriteUInt32LittleEndian(header[5..], (uint)count);
    }

    private static void WriteFrame<TSink>(TSink sink, CircuitImage image)
        where TSink : ISink
    {
        ArgumentNullException.ThrowIfNull(image);
        Span<ReadOnlyMemory<byte>> blocks =
        [
            image.ClientSocket.ReceiveQueue, image.ClientSocket.SendQueue,
            image.UpstreamSocket.ReceiveQueue, image.UpstreamSocket.SendQueue,
            image.ToUpstream, image.ToClient,
        ];
        var fixedBytes = FixedBytes(image);
        long blockBytes = 0;
        foreach (var block in blocks)
        {
            blockBytes += 4 + block.Length;
        }

        if (fixedBytes + blockBytes > MaxBodyBytes)
        {
            throw new ArgumentException($"circuit {image.Id}: an image of {fixedBytes + blockBytes} bytes is over the {MaxBodyBytes}-byte limit", nameof(image));
        }

        var head = ArrayPool<byte>.Shared.Rent(FrameHeaderBytes + fixedBytes);
        try
        {
            var writer = new SpanWriter(head);
            writer.Bytes(FrameMagic);
            writer.U8(Version);
            writer.U32((uint)(fixedBytes + blockBytes));
            WriteFixed(ref writer, image);
            sink.Write(head.AsSpan(0, writer.Position));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(head);
        }

        Span<byte> length = stackalloc byte[4];
        foreach (var block in blocks)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(length, (uint)block.Length);
            sink.Write(length);
            sink.Write(block.Span);
        }
    }

    private static int FixedBytes(CircuitImage image) =>
        8 + StringBytes(image.Route, nameof(image.Route)) + StringBytes(image.Node, nameof(image.Node)) + TimeBytes
        + 5 * 8 + 4 + 1 + (image.LastMovedAt is null ? 0 : TimeBytes)
        + StringBytes(image.Upstream, nameof(image.Upstream)) + EndPointBytes(image.Client)
        + 1 + (image.ProxiedDestination is { } proxied ? EndPointBytes(proxied) : 0) + PhaseBytes(image)
        + SocketFixedBytes(image.ClientSocket) + SocketFixedBytes(image.UpstreamSocket);

    private const int TimeBytes = 8 + 2;

    private static int StringBytes(string value, string field)
    {
        ArgumentNullException.ThrowIfNull(value, field);
        var bytes = StrictUtf8.GetByteCount(value);
        if (bytes > ushort.MaxValue)
        {
            throw new ArgumentException($"{field}: {bytes} bytes of UTF-8, at most {ushort.MaxValue} fit", field);
        }

        return 2 + bytes;
    }

    private static int EndPointBytes(IPEndPoint endpoint) =>
        endpoint.AddressFamily == AddressFamily.InterNetwork ? 1 + 4 + 2 : 1 + 16 + 2 + 4;

    private static int PhaseBytes(CircuitImage image) =>
        image.PhaseProblem() is { } problem ? throw new ArgumentException($"circuit {image.Id}: {problem}", nameof(image)) : 1;

    private static int SocketFixedBytes(TcpSocketImage socket)
    {
        if (socket.Problem() is { } problem)
        {
            throw new ArgumentException(problem, nameof(socket));
        }

        return 2 + EndPointBytes(socket.Local) + EndPointBytes(socket.Remote) + 4 + 4 + 4 + 4 + 3 + 4 + 5 * 4 + 1 + 4 + 4;
    }

    private static void WriteFixed(ref SpanWriter writer, CircuitImage image)
    {
        writer.I64(image.Id);
        writer.String(image.Route);
        writer.String(image.Node);
        writer.Time(image.OpenedAt);
        writer.I64(image.QuietMs);
        writer.I64(image.BytesUp);
        writer.I64(image.BytesDown);
        writer.I64(image.ReadUp);
        writer.I64(image.ReadDown);
        writer.I32(image.Moves);
        writer.U8(image.LastMovedAt is null ? (byte)0 : (byte)1);
        if (image.LastMovedAt is { } moved)
        {
            writer.Time(moved);
        }

        writer.String(image.Upstream);
        writer.EndPoint(image.Client);
        writer.U8(image.ProxiedDestination is null ? (byte)0 : (byte)1);
        if (image.ProxiedDestination is { } proxied)
        {
            writer.EndPoint(proxied);
        }

        writer.U8(image.Phase);
        WriteSocketFixed(ref writer, image.ClientSocket);
        WriteSocketFixed(ref writer, image.UpstreamSocket);
    }

    private static void WriteSocketFixed(ref SpanWriter writer, TcpSocketImage socket)
    {
        writer.U8((byte)socket.State);
        writer.U8((byte)socket.HalfClose);
        writer.EndPoint(socket.Local);
        writer.EndPoint(socket.Remote);
        writer.U32(socket.SendSequence);
        writer.U32(socket.ReceiveSequence);
        writer.I32(socket.UnsentLength);
        writer.I32(socket.MaxSegment);
        writer.U8(socket.Options);
        writer.U8(socket.SendWindowScale);
        writer.U8(socket.ReceiveWindowScale);
        writer.U32(socket.Timestamp);
        writer.U32(socket.Window.SndWl1);
        writer.U32(socket.Window.SndWnd);
        writer.U32(socket.Window.MaxWindow);
        writer.U32(socket.Window.RcvWnd);
        writer.U32(socket.Window.RcvWup);
        writer.U8(socket.NoDelay ? (byte)1 : (byte)0);
        writer.I32(socket.SendBuffer);
        writer.I32(socket.ReceiveBuffer);
    }

    /// <summary>Parses a body; the image's blocks are slices of <paramref name="body"/>, which it owns from now on.</summary>
    private static CircuitImage ParseBody(byte[] body)
    {
        var reader = new SpanReader(body);
        var id = reader.I64("id");
        var route = reader.String("route");
        var node = reader.String("node");
        var openedAt = reader.Time("opened-at");
        var quiet = reader.I64("quiet-ms");
        var bytesUp = reader.I64("bytes-up");
        var bytesDown = reader.I64("bytes-down");
        var readUp = reader.I64("read-up");
        var readDown = reader.I64("read-down");
        var moves = reader.I32("moves");
        DateTimeOffset? lastMoved = reader.Flag("last-moved-at") ? reader.Time("last-moved-at") : null;
        var upstream = reader.String("upstream");
        var client = reader.EndPoint("client");
        var proxied = reader.Flag("proxied-destination") ? reader.EndPoint("proxied-destination") : null;
        var phase = reader.U8("phase");
        var clientSocket = ReadSocketFixed(ref reader, "client socket");
        var upstreamSocket = ReadSocketFixed(ref reader, "upstream socket");
        var memory = body.AsMemory();
        clientSocket = clientSocket with
        {
            ReceiveQueue = reader.Block(memory, "client receive queue"),
            SendQueue = reader.Block(memory, "client send queue"),
        };
        upstreamSocket = upstreamSocket with
        {
            ReceiveQueue = reader.Block(memory, "upstream receive queue"),
            SendQueue = reader.Block(memory, "upstream send queue"),
        };
        var toUpstream = reader.Block(memory, "to-upstream bytes");
        var toClient = reader.Block(memory, "to-client bytes");
        if (reader.Position != body.Length)
        {
            throw new FormatException($"circuit image {id}: {body.Length - reader.Position} bytes after the last block");
        }

        foreach (var socket in new[] { clientSocket, upstreamSocket })
        {
            if (socket.Problem() is { } problem)
            {
                throw new FormatException($"circuit image {id}: {problem}");
            }
        }

        var image = new CircuitImage
        {
            Id = id,
            Route = route,
            Node = node,
            OpenedAt = openedAt,
            QuietMs = quiet,
            BytesUp = bytesUp,
            BytesDown = bytesDown,
            ReadUp = readUp,
            ReadDown = readDown,
            Moves = moves,
            LastMovedAt = lastMoved,
            Upstream = upstream,
            Client = client,
            ProxiedDestination = proxied,
            Phase = phase,
            ClientSocket = clientSocket,
            UpstreamSocket = upstreamSocket,
            ToUpstream = toUpstream,
            ToClient = toClient,
        };
        if (image.PhaseProblem() is { } phaseProblem)
        {
            throw new FormatException($"circuit image {id}: {phaseProblem}");
        }

        return image;
    }

    private static TcpSocketImage ReadSocketFixed(ref SpanReader reader, string which) => new()
    {
        State = (KernelTcpState)reader.U8($"{which} state"),
        HalfClose = (TcpHalfClose)reader.U8($"{which} half-close"),
        Local = reader.EndPoint($"{which} local address"),
        Remote = reader.EndPoint($"{which} remote address"),
        SendSequence = reader.U32($"{which} send sequence"),
        ReceiveSequence = reader.U32($"{which} receive sequence"),
        UnsentLength = reader.I32($"{which} unsent length"),
        MaxSegment = reader.I32($"{which} MSS"),
        Options = reader.U8($"{which} options"),
        SendWindowScale = reader.U8($"{which} send window scale"),
        ReceiveWindowScale = reader.U8($"{which} receive window scale"),
        Timestamp = reader.U32($"{which} timestamp"),
        Window = new TcpRepairWindow(
            reader.U32($"{which} window"), reader.U32($"{which} window"), reader.U32($"{which} window"),
            reader.U32($"{which} window"), reader.U32($"{which} window")),
        NoDelay = reader.Flag($"{which} nodelay"),
        SendBuffer = reader.I32($"{which} send buffer"),
        ReceiveBuffer = reader.I32($"{which} receive buffer"),
        // The blocks come after both sockets' fixed fields.
        SendQueue = ReadOnlyMemory<byte>.Empty,
        ReceiveQueue = ReadOnlyMemory<byte>.Empty,
    };

    /// <summary>Where a frame's bytes go: a buffer writer or a stream.</summary>
    private interface ISink
    {
        void Write(ReadOnlySpan<byte> bytes);
    }

    private readonly struct BufferSink(IBufferWriter<byte> output) : ISink
    {
        public void Write(ReadOnlySpan<byte> bytes) => output.Write(bytes);
    }

    private readonly struct StreamSink(Stream output) : ISink
    {
        public void Write(ReadOnlySpan<byte> bytes) => output.Write(bytes);
    }

    /// <summary>Little-endian writes into a buffer sized by <see cref="FixedBytes"/>.</summary>
    private ref struct SpanWriter(Span<byte> buffer)
    {
        private readonly Span<byte> _buffer = buffer;

        public int Position { get; private set; }

        public void U8(byte value) => _buffer[Position++] = value;

        public void U16(ushort value) => Advance(2, BinaryPrimitives.TryWriteUInt16LittleEndian(_buffer[Position..], value));

        public void U32(uint value) => Advance(4, BinaryPrimitives.TryWriteUInt32LittleEndian(_buffer[Position..], value));

        public void I32(int value) => Advance(4, BinaryPrimitives.TryWriteInt32LittleEndian(_buffer[Position..], value));

        public void I64(long value) => Advance(8, BinaryPrimitives.TryWriteInt64LittleEndian(_buffer[Position..], value));

        public void Bytes(ReadOnlySpan<byte> bytes)
        {
            bytes.CopyTo(_buffer[Position..]);
            Position += bytes.Length;
        }

        public void String(string value)
        {
            var length = StrictUtf8.GetBytes(value, _buffer[(Position + 2)..]);
            U16((ushort)length);
            Position += length;
        }

        public void Time(DateTimeOffset value)
        {
            I64(value.UtcTicks);
            Advance(2, BinaryPrimitives.TryWriteInt16LittleEndian(_buffer[Position..], (short)value.TotalOffsetMinutes));
        }

        public void EndPoint(IPEndPoint endpoint)
        {
            var v4 = endpoint.AddressFamily == AddressFamily.InterNetwork;
            U8(v4 ? (byte)4 : (byte)6);
            endpoint.Address.TryWriteBytes(_buffer[Position..], out var written);
            Position += written;
            U16((ushort)endpoint.Port);
            if (!v4)
            {
                U32((uint)endpoint.Address.ScopeId);
            }
        }

        private void Advance(int bytes, bool written)
        {
            if (!written)
            {
                throw new InvalidOperationException("circuit image: the fixed fields outgrew their measured size");
            }

            Position += bytes;
        }
    }

    /// <summary>Little-endian reads that turn running out of bytes into a FormatException naming the field.</summary>
    private ref struct SpanReader(ReadOnlySpan<byte> body)
    {
        private readonly ReadOnlySpan<byte> _body = body;

        public int Position { get; private set; }

        public byte U8(string field) => Take(1, field)[0];

        public bool Flag(string field) => U8(field) switch
        {
            0 => false,
            1 => true,
            var other => throw new FormatException($"circuit image: {field}: flag byte {other} at offset {Position - 1}, expected 0 or 1"),
        };

        public uint U32(string field) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, field));

        public int I32(string field) => BinaryPrimitives.ReadInt32LittleEndian(Take(4, field));

        public long I64(string field) => BinaryPrimitives.ReadInt64LittleEndian(Take(8, field));

        public string String(string field)
        {
            var length = BinaryPrimitives.ReadUInt16LittleEndian(Take(2, field));
            var bytes = Take(length, field);
            try
            {
                return StrictUtf8.GetString(bytes);
            }
            catch (DecoderFallbackException)
            {
                throw new FormatException($"circuit image: {field}: not UTF-8 (at offset {Position - length})");
            }
        }

        public DateTimeOffset Time(string field)
        {
            var ticks = I64(field);
            var offset = BinaryPrimitives.ReadInt16LittleEndian(Take(2, field));
            try
            {
                return new DateTimeOffset(ticks, TimeSpan.Zero).ToOffset(TimeSpan.FromMinutes(offset));
            }
            catch (ArgumentException)
            {
                throw new FormatException($"circuit image: {field}: {ticks} ticks at offset {offset} min is not a time");
            }
        }

        public IPEndPoint EndPoint(string field)
        {
            var family = U8(field);
            if (family is not (4 or 6))
            {
                throw new FormatException($"circuit image: {field}: address family byte {family} at offset {Position - 1}, expected 4 or 6");
            }

            var address = Take(family == 4 ? 4 : 16, field);
            var port = BinaryPrimitives.ReadUInt16LittleEndian(Take(2, field));
            return family == 4
                ? new IPEndPoint(new IPAddress(address), port)
                : new IPEndPoint(new IPAddress(address, U32(field)), port);
        }

        /// <summary>A u32 length and that many bytes, as a slice of <paramref name="memory"/> (the same array as the span read).</summary>
        public ReadOnlyMemory<byte> Block(ReadOnlyMemory<byte> memory, string field)
        {
            var length = U32(field);
            if (length > _body.Length - Position)
            {
                throw new FormatException($"circuit image: {field}: a block of {length} bytes at offset {Position - 4}, only {_body.Length - Position} remain");
            }

            var block = memory.Slice(Position, (int)length);
            Position += (int)length;
            return block;
        }

        private ReadOnlySpan<byte> Take(int length, string field)
        {
            if (length > _body.Length - Position)
            {
                throw new FormatException($"circuit image: truncated in {field} at offset {Position} ({length} bytes needed, {_body.Length - Position} remain)");
            }

            var slice = _body.Slice(Position, length);
            Position += length;
            return slice;
        }
    }
}
