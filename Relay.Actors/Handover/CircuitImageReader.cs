namespace Relay.Actors.Handover;

/// <summary>
/// Reads a batch (<see cref="CircuitImageFormat"/>) from a stream one image at a time, so the
/// node taking circuits over restores the first while the rest are still on the wire. Not
/// thread-safe; one reader per stream. After an exception (a malformed batch, a cancelled
/// read) the stream's position within the batch is unknown: the batch is lost, not resumable.
/// </summary>
public sealed class CircuitImageReader(Stream input)
{
    private readonly Stream _input = input ?? throw new ArgumentNullException(nameof(input));
    private int _remaining = -1;

    /// <summary>How many images the batch announced; null until the first read.</summary>
    public int? Count { get; private set; }

    /// <summary>The next image, or null after the last one the batch announced.</summary>
    /// <exception cref="FormatException">Not a batch of this version, truncated, or inconsistent.</exception>
    public CircuitImage? ReadNext() => ReadNextAsync(sync: true, CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>The next image, or null after the last one the batch announced.</summary>
    /// <exception cref="FormatException">Not a batch of this version, truncated, or inconsistent.</exception>
    public ValueTask<CircuitImage?> ReadNextAsync(CancellationToken cancellationToken = default) =>
        ReadNextAsync(sync: false, cancellationToken);

    private async ValueTask<CircuitImage?> ReadNextAsync(bool sync, CancellationToken cancellationToken)
    {
        if (_remaining < 0)
        {
            var header = new byte[CircuitImageFormat.BatchHeaderBytes];
            await CircuitImageFormat.ReadExactlyAsync(_input, header, sync, "the batch header", cancellationToken).ConfigureAwait(false);
            _remaining = CircuitImageFormat.ReadBatchHeader(header);
            Count = _remaining;
        }

        if (_remaining == 0)
        {
            return null;
        }

        var image = await CircuitImageFormat.ReadFrameAsync(_input, sync, cancellationToken).ConfigureAwait(false);
        _remaining--;
        return image;
    }
}
