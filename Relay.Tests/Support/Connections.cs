using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace Relay.Tests.Support;

/// <summary>What lifecycle tests do with a relay's listeners: probe that one refuses, and keep a transfer in flight across a change.</summary>
internal static class Connections
{
    /// <summary>
    /// True when a connect to <paramref name="endpoint"/> is refused; false when it is accepted,
    /// or reset because the listener closed while the probe sat in its accept queue (the kernel
    /// resets queued connections on close): the listener was still there when the probe arrived.
    /// </summary>
    public static async Task<bool> RefusesAsync(IPEndPoint endpoint)
    {
        try
        {
            using var probe = await SocketIo.ConnectAsync(endpoint);
            return false;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            return false;
        }
    }

    /// <summary>
    /// Sends <paramref name="total"/> pseudo-random bytes from <paramref name="seed"/> on <paramref name="client"/>
    /// in 64 KiB chunks <paramref name="paceMs"/> apart, then FIN, while the echo is read back concurrently:
    /// the hash of what was sent, and the byte count and hash of what came back. Given <paramref name="secondHalf"/>,
    /// the second half waits for it: until then the transfer is in flight however slowly the test runs.
    /// </summary>
    public static (Task<byte[]> Sent, Task<(long Bytes, byte[] Hash)> Received) StartPacedTransfer(
        Socket client, long total, int paceMs, int seed, Task? secondHalf = null)
    {
        var received = SocketIo.ReadToEndAsync(client);
        var sent = Task.Run(async () =>
        {
            var random = new Random(seed);
            var buffer = new byte[64 * 1024];
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            for (long left = total; left > 0; left -= buffer.Length)
            {
                if (secondHalf is not null && left <= total / 2)
                {
                    await secondHalf;
                    secondHalf = null;
                }

                random.NextBytes(buffer);
                hash.AppendData(buffer);
                await client.SendAsync(buffer, SocketFlags.None);
                await Task.Delay(paceMs);
            }

            client.Shutdown(SocketShutdown.Send);
            return hash.GetHashAndReset();
        });
        return (sent, received);
    }
}
