using System.Buffers;

namespace Relay.Actors.Handover;

/// <summary>
/// One frame received from a <see cref="StateChannel"/>: its type and its payload, in an
/// array rented from <see cref="ArrayPool{T}.Shared"/>. Dispose it when the payload has been
/// read (deserialized or copied): that returns the array, and the payload is empty after.
/// </summary>
public sealed class StateChannelFrame : IDisposable
{
    private byte[]? _array;
    private readonly int _length;

    internal StateChannelFrame(byte type, byte[] array, int length)
    {
        Type = type;
        _array = array;
        _length = length;
    }

    /// <summary>The frame's type byte, as the sender gave it; the channel does not interpret it.</summary>
    public byte Type { get; }

    /// <summary>The payload: valid until <see cref="Dispose"/>.</summary>
    public ReadOnlyMemory<byte> Payload => _array is { } array ? array.AsMemory(0, _length) : ReadOnlyMemory<byte>.Empty;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _array, null) is { Length: > 0 } array)
        {
            ArrayPool<byte>.Shared.Return(array);
        }
    }
}
