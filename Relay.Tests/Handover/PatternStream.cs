using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using Relay.Actors.Sockets;

namespace Relay.Tests.Handover;

/// <summary>
/// One end of a test connection that writes a counter pattern (8-byte big-endian blocks,
/// seed &lt;&lt; 48 | block index, as the prototype's) and checks the one it reads, so a byte
/// lost, duplicated, reordered or from another connection shows as the offset of the first
/// wrong byte. Non-blocking, through <see cref="RawSocket"/> (the relay's own data path).
/// Writing can be paced, limited, and preceded by bytes to write again (a restored socket's
/// unsent ones). One thread at a time drives it.
/// </summary>
internal sealed class PatternStream(string name, Socket socket, int txSeed, int rxSeed)
{
    private readonly byte[] _in = new byte[64 * 1024];
    private readonly byte[] _out = new byte[64 * 1024];
    private readonly byte[] _expected = new byte[64 * 1024];
    private ReadOnlyMemory<byte> _again;
    private long _againOffset;
    private bool _shut;

    public string Name { get; } = name;

    /// <summary>The socket; replaced by the restored one after a move.</summary>
    public Socket Socket { get; set; } = socket;

    /// <summary>Pattern bytes handed to the kernel (the offset of the next new one).</summary>
    public long Sent { get; private set; }

    /// <summary>Pattern bytes read and checked.</summary>
    public long Received { get; private set; }

    /// <summary>The offset of the first byte read that broke the pattern.</summary>
    public long? BadAt { get; private set; }

    public bool Eof { get; private set; }

    public string? Error { get; private set; }

    public bool Reading { get; set; } = true;

    /// <summary>Stop handing new bytes to the kernel at this many.</summary>
    public long SendLimit { get; set; } = long.MaxValue;

    /// <summary>Bytes per second at most (0: as fast as the socket takes them).</summary>
    public long Rate { get; set; }

    /// <summary>Shut the sending side down once <see cref="SendLimit"/> bytes (and any to write again) are written.</summary>
    public bool ShutdownAtLimit { get; set; }

    /// <summary>The send side was shut down (here, or before a move).</summary>
    public bool Shut => _shut;

    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _pacedFrom;

    /// <summary>
    /// After a move: <paramref name="unsent"/> are the last bytes handed to the old socket's
    /// kernel that never left; they must be the pattern just before <see cref="Sent"/>, and are
    /// written before any new ones.
    /// </summary>
    public void WriteAgain(ReadOnlyMemory<byte> unsent)
    {
        var expected = new byte[unsent.Length];
        PatternFill(txSeed, Sent - unsent.Length, expected);
        Assert.True(unsent.Span.SequenceEqual(expected), $"{Name}: the unsent bytes are not the pattern at {Sent - unsent.Length}");
        _again = unsent;
        _againOffset = 0;
    }

    /// <summary>
    /// After a move of a socket whose FIN had not left (<c>OwesFin</c>): shut down again once
    /// the bytes to write again are written, and write nothing new.
    /// </summary>
    public void OweFin()
    {
        _shut = false;
        SendLimit = Sent;
        ShutdownAtLimit = true;
    }

    /// <summary>Restart the pacing clock (after a freeze, so the stream does not burst to catch up).</summary>
    public void Repace()
    {
        _clock.Restart();
        _pacedFrom = Sent;
    }

    /// <summary>One pass: reads what is waiting, writes what pacing and the limit allow. True if anything moved.</summary>
    public bool Step()
    {
        if (Error is not null)
        {
            return false;
        }

        var moved = false;
        if (Reading && !Eof)
        {
            moved |= ReadSome();
        }

        moved |= WriteSome();
        return moved;
    }

    /// <summary>Everything written and shut down (if asked), and EOF read.</summary>
    public bool Done(bool expectShut) => Error is not null || (Eof && (!expectShut || _shut));

    public override string ToString() =>
        $"{Name}: sent {Sent}, received {Received}, bad at {BadAt?.ToString() ?? "-"}, eof {Eof}, shut {_shut}, error {Error ?? "-"}";

    private bool ReadSome()
    {
        var moved = false;
        for (var i = 0; i < 16; i++)
        {
            var read = RawSocket.Receive(Socket, _in, _in.Length, out var error);
            if (error == SocketError.WouldBlock)
            {
                break;
            }

            if (error != SocketError.Success)
            {
                Error = $"recv: {error}";
                return true;
            }

            moved = true;
            if (read == 0)
            {
                Eof = true;
                break;
            }

            if (BadAt is null)
            {
                PatternFill(rxSeed, Received, _expected.AsSpan(0, read));
                var bad = _in.AsSpan(0, read).CommonPrefixLength(_expected.AsSpan(0, read));
                if (bad < read)
                {
                    BadAt = Received + bad;
                }
            }

            Received += read;
        }

        return moved;
    }

    private bool WriteSome()
    {
        if (_shut)
        {
            return false;
        }

        if (_againOffset < _again.Length)
        {
            var chunk = _again.Slice((int)_againOffset, (int)Math.Min(_out.Length, _again.Length - _againOffset));
            chunk.CopyTo(_out);
            var written = RawSocket.Send(Socket, _out, 0, chunk.Length, out var againError);
            if (againError is not (SocketError.Success or SocketError.WouldBlock))
            {
                Error = $"send: {againError}";
                return true;
            }

            _againOffset += written;
            return written > 0;
        }

        var budget = SendLimit - Sent;
        if (Rate > 0)
        {
            budget = Math.Min(budget, (long)(Rate * _clock.Elapsed.TotalSeconds) - (Sent - _pacedFrom));
        }

        if (budget <= 0)
        {
            if (Sent >= SendLimit && ShutdownAtLimit)
            {
                var shut = RawSocket.ShutdownSend(Socket);
                if (shut != SocketError.Success)
                {
                    Error = $"shutdown: {shut}";
                }

                _shut = true;
                return true;
            }

            return false;
        }

        var count = (int)Math.Min(budget, _out.Length);
        PatternFill(txSeed, Sent, _out.AsSpan(0, count));
        var sent = RawSocket.Send(Socket, _out, 0, count, out var error);
        if (error is not (SocketError.Success or SocketError.WouldBlock))
        {
            Error = $"send: {error}";
            return true;
        }

        Sent += sent;
        return sent > 0;
    }

    /// <summary>The pattern of <paramref name="seed"/> from byte <paramref name="offset"/> into <paramref name="into"/>.</summary>
    public static void PatternFill(int seed, long offset, Span<byte> into)
    {
        Span<byte> block = stackalloc byte[8];
        var position = 0;
        while (position < into.Length)
        {
            var at = offset + position;
            BinaryPrimitives.WriteUInt64BigEndian(block, ((ulong)seed << 48) | (ulong)(at >> 3));
            var from = (int)(at & 7);
            var count = Math.Min(8 - from, into.Length - position);
            block.Slice(from, count).CopyTo(into[position..]);
            position += count;
        }
    }

    /// <summary>
    /// Drives <paramref name="streams"/> on the calling thread until <paramref name="until"/>
    /// holds, <paramref name="stop"/> is set, or <paramref name="limit"/> passes (then fails
    /// with the streams' state). Waits 1 ms when nothing moved.
    /// </summary>
    public static void Pump(IReadOnlyList<PatternStream> streams, Func<bool> until, TimeSpan limit, CancellationToken stop = default)
    {
        var deadline = Stopwatch.StartNew();
        while (!until() && !stop.IsCancellationRequested)
        {
            Assert.True(deadline.Elapsed < limit, $"timed out after {limit.TotalSeconds:0.#} s: {string.Join("; ", streams)}");
            var moved = false;
            foreach (var stream in streams)
            {
                moved |= stream.Step();
            }

            if (!moved)
            {
                Thread.Sleep(1);
            }
        }
    }
}
