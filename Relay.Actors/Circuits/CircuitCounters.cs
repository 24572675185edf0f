namespace Relay.Actors.Circuits;

/// <summary>
/// Byte counters and the activity clock of one circuit. Each field has exactly one writer
/// (the actor that pumps that direction, on the circuit's core), so updates are plain
/// stores with no lock and no interlocked operation on the hot path; readers on other
/// threads (management, metrics, the idle timer) use <see cref="Volatile"/> reads.
/// <para>
/// Not sealed: a circuit's <see cref="CircuitEntry"/> is its counters too
/// (<see cref="CircuitEntry.Counters"/> is the entry itself), 24 bytes less per circuit than
/// an object of their own.
/// </para>
/// </summary>
public class CircuitCounters
{
    private long _bytesUp;
    private long _bytesDown;
    private long _readUp;
    private long _readDown;
    private long _lastActivityMs = Environment.TickCount64;
    private long _spliced;

    private protected CircuitCounters()
    {
    }

    /// <summary>Bytes written to the upstream (client to upstream).</summary>
    public long BytesUp => Volatile.Read(ref _bytesUp);

    /// <summary>Bytes written to the client (upstream to client).</summary>
    public long BytesDown => Volatile.Read(ref _bytesDown);

    /// <summary>Bytes read from the client; minus <see cref="BytesUp"/> it is what the relay holds in flight.</summary>
    public long ReadUp => Volatile.Read(ref _readUp);

    /// <summary>Bytes read from the upstream; minus <see cref="BytesDown"/> it is what the relay holds in flight.</summary>
    public long ReadDown => Volatile.Read(ref _readDown);

    /// <summary>Of the bytes written, those that went through a splice pipe (both directions), never in user space.</summary>
    public long Spliced => Volatile.Read(ref _spliced);

    /// <summary><see cref="Environment.TickCount64"/> at the last byte moved in either direction.</summary>
    public long LastActivityMs => Volatile.Read(ref _lastActivityMs);

    /// <summary>
    /// Starts a circuit restored after a handover where it stood on the node it came from: its
    /// bytes so far, and its last activity <paramref name="quietMs"/> ago (the idle timeout
    /// goes on counting across the move).
    /// </summary>
    internal void Restore(long bytesUp, long bytesDown, long readUp, long readDown, long quietMs)
    {
        _bytesUp = bytesUp;
        _bytesDown = bytesDown;
        _readUp = readUp;
        _readDown = readDown;
        Volatile.Write(ref _lastActivityMs, Environment.TickCount64 - Math.Max(0, quietMs));
    }

    internal void AddRead(bool upstream, int bytes)
    {
        if (upstream)
        {
            Volatile.Write(ref _readUp, _readUp + bytes);
        }
        else
        {
            Volatile.Write(ref _readDown, _readDown + bytes);
        }
    }

    internal void AddSpliced(bool upstream, int bytes, long nowMs)
    {
        Volatile.Write(ref _spliced, _spliced + bytes);
        AddWritten(upstream, bytes, nowMs);
    }

    internal void AddWritten(bool upstream, int bytes, long nowMs)
    {
        if (upstream)
        {
            Volatile.Write(ref _bytesUp, _bytesUp + bytes);
        }
        else
        {
            Volatile.Write(ref _bytesDown, _bytesDown + bytes);
        }

        Volatile.Write(ref _lastActivityMs, nowMs);
    }
}
