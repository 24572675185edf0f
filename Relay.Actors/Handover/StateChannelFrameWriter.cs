using System.Buffers;

namespace Relay.Actors.Handover;

/// <summary>
/// INTERNAL API. The buffer a <see cref="StateChannel"/> builds an outgoing frame in: the
/// header's five bytes are reserved at the front, the caller writes the payload behind them
/// through <see cref="IBufferWriter{T}"/>, and <see cref="Finish"/> fills the header in, so
/// the frame leaves in one send. The array is rented and kept for the next frame: after the
/// first frame of the largest size, no frame grows it again.
/// </summary>
internal sealed class StateChannelFrameWriter : IBufferWriter<byte>, IDisposable
{
    private const int InitialSize = 64 * 1024;

    private readonly int _maxFrameSize;
    private byte[] _buffer = [];
    private int _written;
    private byte _type;

    public StateChannelFrameWriter(int maxFrameSize) => _maxFrameSize = maxFrameSize;

    /// <summary>Begins a frame of <paramref name="type"/>: the writer the payload goes to.</summary>
    public IBufferWriter<byte> Start(byte type)
    {
        if (_buffer.Length == 0)
        {
            _buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(InitialSize, StateChannel.HeaderSize + (long)_maxFrameSize));
        }

        _type = type;
        _written = StateChannel.HeaderSize;
        return this;
    }

    /// <summary>The whole frame, header filled in; valid until the next <see cref="Start"/>.</summary>
    public ReadOnlyMemory<byte> Finish()
    {
        StateChannel.WriteHeader(_buffer, _type, _written - StateChannel.HeaderSize);
        var frame = _buffer.AsMemory(0, _written);
        _written = 0;
        return frame;
    }

    public void Advance(int count)
    {
        if (count < 0 || _written + count > _buffer.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, "Advanced past the memory the state channel frame writer gave out.");
        }

        // The pool's array may be larger than asked for: the maximum is checked here too.
        if ((long)_written + count - StateChannel.HeaderSize > _maxFrameSize)
        {
            throw TooLarge(_written - StateChannel.HeaderSize, count);
        }

        _written += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Reserve(sizeHint);
        return _buffer.AsMemory(_written);
    }

    public Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

    public void Dispose()
    {
        if (_buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
    }

    private void Reserve(int sizeHint)
    {
        var payload = _written - StateChannel.HeaderSize;
        var wanted = Math.Max(sizeHint, 1);
        if (_buffer.Length - _written >= wanted)
        {
            return;
        }

        if ((long)payload + wanted > _maxFrameSize)
        {
            throw TooLarge(payload, wanted);
        }

        // Doubling keeps the copies of a growing frame below its size in all.
        var size = (int)Math.Min(StateChannel.HeaderSize + (long)_maxFrameSize, Math.Max(Math.Max(InitialSize, 2L * _buffer.Length), (long)_written + wanted));
        var grown = ArrayPool<byte>.Shared.Rent(size);
        _buffer.AsSpan(0, _written).CopyTo(grown);
        Dispose();
        _buffer = grown;
    }

    private StateChannelException TooLarge(int payload, int more) => new(
        $"a state channel frame carries at most {_maxFrameSize} bytes: {payload} were written and {more} more asked for");
}
