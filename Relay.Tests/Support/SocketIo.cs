using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace Relay.Tests.Support;

/// <summary>Small socket helpers for tests: connect, send a stream, read to EOF with a hash.</summary>
internal static class SocketIo
{
    public static async Task<Socket> ConnectAsync(IPEndPoint endpoint)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endpoint);
        return socket;
    }

    /// <summary>Sends <paramref name="total"/> pseudo-random bytes from <paramref name="seed"/>; returns their SHA-256.</summary>
    public static async Task<byte[]> SendRandomAsync(Socket socket, long total, int seed, int chunk = 128 * 1024)
    {
        var random = new Random(seed);
        var buffer = new byte[chunk];
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var left = total;
        while (left > 0)
        {
            var n = (int)Math.Min(chunk, left);
            random.NextBytes(buffer.AsSpan(0, n));
            hash.AppendData(buffer, 0, n);
            await socket.SendAsync(buffer.AsMemory(0, n), SocketFlags.None);
            left -= n;
        }

        return hash.GetHashAndReset();
    }

    /// <summary>Reads until EOF; returns the byte count and SHA-256 of everything read.</summary>
    public static async Task<(long Bytes, byte[] Hash)> ReadToEndAsync(Socket socket)
    {
        var buffer = new byte[128 * 1024];
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long total = 0;
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None);
            if (n == 0)
            {
                return (total, hash.GetHashAndReset());
            }

            hash.AppendData(buffer, 0, n);
            total += n;
        }
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes.</summary>
    public static async Task<byte[]> ReadExactlyAsync(Socket socket, int count)
    {
        var buffer = new byte[count];
        var read = 0;
        while (read < count)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None);
            if (n == 0)
            {
                throw new EndOfStreamException($"EOF after {read} of {count} bytes");
            }

            read += n;
        }

        return buffer;
    }

    /// <summary>
    /// Reads until the connection ends and says how: "eof" for a FIN, "reset" for an RST.
    /// </summary>
    public static async Task<string> ReadUntilClosedAsync(Socket socket, TimeSpan timeout)
    {
        var buffer = new byte[64 * 1024];
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                if (n == 0)
                {
                    return "eof";
                }
            }
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted)
        {
            return "reset";
        }
        catch (OperationCanceledException)
        {
            return "timeout";
        }
    }

    /// <summary>
    /// Connects and reads until the connection ends, as <see cref="ReadUntilClosedAsync"/>. For
    /// a relay that resets the client at once (a refused upstream): the RST can land before
    /// .NET has seen the connect complete, and then ConnectAsync itself throws ECONNRESET.
    /// </summary>
    public static async Task<string> ConnectThenReadUntilClosedAsync(IPEndPoint endpoint, TimeSpan timeout)
    {
        try
        {
            using var socket = await ConnectAsync(endpoint);
            return await ReadUntilClosedAsync(socket, timeout);
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset)
        {
            return "reset";
        }
    }

    /// <summary>Closes with SO_LINGER 0, which sends an RST instead of a FIN.</summary>
    public static void Abort(Socket socket)
    {
        socket.LingerState = new LingerOption(true, 0);
        socket.Dispose();
    }

    public static byte[] Sha256(ReadOnlySpan<byte> data) => SHA256.HashData(data);
}
