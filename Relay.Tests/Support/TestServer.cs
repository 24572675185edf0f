using System.Net;
using System.Net.Sockets;

namespace Relay.Tests.Support;

/// <summary>
/// A real TCP server on 127.0.0.1, port 0, that runs <c>handler</c> for each connection.
/// Handler failures are kept so a test can assert the server side saw what it expected.
/// </summary>
internal sealed class TestServer : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly Func<Socket, Task> _handler;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _connections = new();
    private readonly Task _acceptLoop;

    /// <param name="endpoint">Where to listen; 127.0.0.1:0 unless a test needs a given port (SO_REUSEADDR is set).</param>
    public TestServer(Func<Socket, Task> handler, int backlog = 512, IPEndPoint? endpoint = null)
    {
        _handler = handler;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        if (endpoint is not null)
        {
            _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        }

        _listener.Bind(endpoint ?? new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(backlog);
        _acceptLoop = Task.Run(AcceptLoop);
    }

    public IPEndPoint Endpoint => (IPEndPoint)_listener.LocalEndPoint!;

    public int Accepted;

    /// <summary>Everything the handlers threw, in order.</summary>
    public List<Exception> Failures { get; } = new();

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(_stop.Token);
            }
            catch
            {
                return;
            }

            Interlocked.Increment(ref Accepted);
            var task = Task.Run(async () =>
            {
                try
                {
                    await _handler(socket);
                }
                catch (Exception e)
                {
                    lock (Failures)
                    {
                        Failures.Add(e);
                    }
                }
                finally
                {
                    socket.Dispose();
                }
            });
            lock (_connections)
            {
                _connections.Add(task);
            }
        }
    }

    /// <summary>Waits for every handler started so far.</summary>
    public async Task DrainAsync(TimeSpan timeout)
    {
        Task[] all;
        lock (_connections)
        {
            all = _connections.ToArray();
        }

        await Task.WhenAll(all).WaitAsync(timeout);
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Dispose();
        await _acceptLoop;
    }

    /// <summary>Echoes every byte back and carries the client's FIN back as its own.</summary>
    public static async Task Echo(Socket socket)
    {
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None);
            if (n == 0)
            {
                socket.Shutdown(SocketShutdown.Send);
                return;
            }

            await socket.SendAsync(buffer.AsMemory(0, n), SocketFlags.None);
        }
    }
}
