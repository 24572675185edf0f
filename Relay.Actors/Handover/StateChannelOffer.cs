using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace Relay.Actors.Handover;

/// <summary>
/// The target's side of a <see cref="StateChannel"/>: a one-shot listener on this node's
/// cluster address, on a port the kernel picks, that admits exactly one connection: from
/// the expected member's address, whose first <see cref="TokenLength"/> bytes are the offer's
/// random <see cref="Token"/>, sent within <see cref="TokenDeadline"/>. The caller sends
/// (<see cref="Port"/>, <see cref="Token"/>) to the source over Akka.Remote, which only
/// members reach, so only a member can know the token; the address check keeps any other
/// host from even trying one.
/// </summary>
/// <remarks>
/// Every other connection is closed at once and reported (<see cref="StateChannelRejection"/>):
/// one from another address before anything is read from it, one with a wrong or missing
/// token after at most the token's bytes. Nothing beyond the token is read before it matched.
/// The listener closes as soon as the right peer is in, when the offer expires (connects are
/// refused from then on), or at <see cref="Dispose"/>.
/// </remarks>
public sealed class StateChannelOffer : IDisposable
{
    /// <summary>Bytes of random token, from <see cref="RandomNumberGenerator"/>: 256 bits, not guessable.</summary>
    public const int TokenLength = 32;

    /// <summary>
    /// How long a connection from the expected member may take to send its token. The source
    /// writes it right after connect, so on a LAN it arrives in well under a millisecond; the
    /// deadline only frees a connection that will never send one.
    /// </summary>
    public static readonly TimeSpan TokenDeadline = TimeSpan.FromSeconds(2);

    private readonly Socket _listener;
    private readonly byte[] _token;
    private readonly CancellationTokenSource _lifetime;
    private readonly Action<StateChannelRejection>? _rejected;
    private readonly int _maxFrameSize;
    private int _rejectedCount;
    private int _accepting;
    private volatile bool _disposed;

    private StateChannelOffer(Socket listener, IPAddress expectedPeer, TimeSpan expiry, Action<StateChannelRejection>? rejected, int maxFrameSize)
    {
        _listener = listener;
        Endpoint = (IPEndPoint)listener.LocalEndPoint!;
        ExpectedPeer = Normalize(expectedPeer);
        Expiry = expiry;
        _rejected = rejected;
        _maxFrameSize = maxFrameSize;
        _token = RandomNumberGenerator.GetBytes(TokenLength);
        _lifetime = new CancellationTokenSource(expiry);
        // Closed by the timer itself, not by a pending AcceptAsync, so an offer nobody
        // waits on stops listening at its expiry too.
        _lifetime.Token.Register(static state => ((Socket)state!).Dispose(), listener);
    }

    /// <summary>The address and port the offer listens on.</summary>
    public IPEndPoint Endpoint { get; }

    /// <summary>The port the kernel gave the listener: what the source connects to.</summary>
    public int Port => Endpoint.Port;

    /// <summary>The token the source must send first; it goes to the source over Akka.Remote.</summary>
    public ReadOnlyMemory<byte> Token => _token;

    /// <summary>The only address a connection is admitted from.</summary>
    public IPAddress ExpectedPeer { get; }

    public TimeSpan Expiry { get; }

    /// <summary>How many connections were refused so far.</summary>
    public int RejectedCount => Volatile.Read(ref _rejectedCount);

    /// <summary>
    /// Listens on <paramref name="bindAddress"/> (the address Akka.Remote binds on this node)
    /// with an ephemeral port, for a connection from <paramref name="expectedPeer"/> (the
    /// source member's address) until <paramref name="expiry"/> has passed.
    /// <paramref name="rejected"/> is told of each refused connection, on a thread-pool thread
    /// (an actor passes a <c>Tell</c> to itself).
    /// </summary>
    /// <exception cref="StateChannelException">The address cannot be bound; the message names it.</exception>
    public static StateChannelOffer Open(
        IPAddress bindAddress,
        IPAddress expectedPeer,
        TimeSpan expiry,
        Action<StateChannelRejection>? rejected = null,
        int maxFrameSize = StateChannel.DefaultMaxFrameSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(expiry, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxFrameSize);
        var listener = new Socket(bindAddress.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            StateChannel.Tune(listener);
            listener.Bind(new IPEndPoint(bindAddress, 0));
            // A few: the source connects once; the rest is what a scan or a retry brings.
            listener.Listen(8);
            return new StateChannelOffer(listener, expectedPeer, expiry, rejected, maxFrameSize);
        }
        catch (SocketException e)
        {
            listener.Dispose();
            var problem = e.SocketErrorCode == SocketError.AddressNotAvailable ? "no such local address" : e.Message;
            throw new StateChannelException($"state channel offer: cannot listen on {bindAddress}: {problem}", e);
        }
    }

    /// <summary>
    /// The channel of the expected member, once it connected and sent the token. Call once:
    /// the offer admits one channel, and whatever ends this call (success, expiry, the
    /// <paramref name="cancellationToken"/>, <see cref="Dispose"/>) closes the listener.
    /// </summary>
    /// <exception cref="TimeoutException">The offer expired first; the message names the expected member and the refusals.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The offer was disposed.</exception>
    public async Task<StateChannel> AcceptAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _accepting, 1) != 0)
        {
            throw new InvalidOperationException("AcceptAsync was called already: an offer admits one channel.");
        }

        ObjectDisposedException.ThrowIf(_disposed, this);
        using var ending = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _lifetime.Token);
        // Each connection from the expected address is checked on its own, so one that
        // stalls before its token does not hold the right one back.
        var pending = new List<Task>(2);
        try
        {
            var accept = _listener.AcceptAsync(ending.Token).AsTask();
            pending.Add(accept);
            while (true)
            {
                var done = await Task.WhenAny(pending).ConfigureAwait(false);
                pending.Remove(done);
                if (done == accept)
                {
                    var socket = await accept.ConfigureAwait(false);
                    var peer = (IPEndPoint)socket.RemoteEndPoint!;
                    if (Normalize(peer.Address).Equals(ExpectedPeer))
                    {
                        pending.Add(AdmitAsync(socket, peer, ending.Token));
                    }
                    else
                    {
                        socket.Dispose();
                        Reject(peer, StateChannelRejectionKind.NotExpectedMember, $"not the expected member {ExpectedPeer}");
                    }

                    accept = _listener.AcceptAsync(ending.Token).AsTask();
                    pending.Add(accept);
                }
                else if (await ((Task<StateChannel?>)done).ConfigureAwait(false) is { } channel)
                {
                    return channel;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException && ending.IsCancellationRequested)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ObjectDisposedException.ThrowIf(_disposed, this);
            throw new TimeoutException(
                $"state channel offer on {Endpoint}: no connection from {ExpectedPeer} with the token within {Expiry.TotalSeconds:0.###} s ({RejectedCount} refused)");
        }
        catch (SocketException e)
        {
            throw new StateChannelException($"state channel offer on {Endpoint}: accept failed: {e.Message}", e);
        }
        finally
        {
            // Admissions still waiting for a token end with the offer and close their sockets.
            await ending.CancelAsync().ConfigureAwait(false);
            _listener.Dispose();
            foreach (var task in pending)
            {
                // One that got its token in the instant the offer ended is closed, not leaked.
                if (task is Task<StateChannel?> admission)
                {
                    _ = admission.ContinueWith(static t => t.Result?.Dispose(), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
                }
            }
        }
    }

    /// <summary>Closes the listener (its port is free again at once) and any connection still sending its token.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _lifetime.Cancel();
        _listener.Dispose();
        _lifetime.Dispose();
    }

    /// <summary>
    /// Reads exactly the token's bytes (nothing of the payload behind it) within
    /// <see cref="TokenDeadline"/>, compares them in constant time, and answers an accepted
    /// token with the channel's version. The channel, or null after closing and reporting it.
    /// Never throws: the accept loop awaits it among the others.
    /// </summary>
    private async Task<StateChannel?> AdmitAsync(Socket socket, IPEndPoint peer, CancellationToken ending)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ending);
        deadline.CancelAfter(TokenDeadline);
        var received = new byte[TokenLength];
        var got = 0;
        try
        {
            while (got < TokenLength)
            {
                var read = await socket.ReceiveAsync(received.AsMemory(got), SocketFlags.None, deadline.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    socket.Dispose();
                    Reject(peer, StateChannelRejectionKind.NoToken, $"closed after {got} of the token's {TokenLength} bytes");
                    return null;
                }

                got += read;
            }

            if (!CryptographicOperations.FixedTimeEquals(received, _token))
            {
                socket.Dispose();
                Reject(peer, StateChannelRejectionKind.WrongToken, "wrong token");
                return null;
            }

            socket.NoDelay = true;
            await StateChannel.SendAllAsync(socket, new[] { StateChannel.ProtocolVersion }, ending).ConfigureAwait(false);
            return new StateChannel(socket, _maxFrameSize);
        }
        catch (OperationCanceledException) when (!ending.IsCancellationRequested)
        {
            socket.Dispose();
            Reject(peer, StateChannelRejectionKind.NoToken, $"no token within {TokenDeadline.TotalSeconds:0.#} s ({got} of {TokenLength} bytes)");
            return null;
        }
        catch (OperationCanceledException)
        {
            // The offer ended (taken, expired, cancelled): not the peer's fault.
            socket.Dispose();
            return null;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            Reject(peer, StateChannelRejectionKind.Failed, $"failed before the channel opened: {e.Message}");
            return null;
        }
        catch (ObjectDisposedException)
        {
            socket.Dispose();
            return null;
        }
    }

    private void Reject(IPEndPoint peer, StateChannelRejectionKind kind, string reason)
    {
        Interlocked.Increment(ref _rejectedCount);
        _rejected?.Invoke(new StateChannelRejection(peer, kind, reason));
    }

    private static IPAddress Normalize(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
}
