using System.Net;
using System.Net.Sockets;

namespace Relay.Tests.Support;

/// <summary>Loopback endpoints in the states tests need: taken, closed, or never answering.</summary>
internal static class Endpoints
{
    /// <summary>A listening socket on 127.0.0.1 that holds its port for the test.</summary>
    public static Socket Occupy()
    {
        var occupant = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        occupant.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        occupant.Listen(1);
        return occupant;
    }

    /// <summary>A port on 127.0.0.1 with nothing listening: connects to it are refused.</summary>
    public static int ClosedPort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    /// <summary>
    /// A listener whose accept queue is full, so the kernel drops further SYNs and a connect
    /// to it hangs: an upstream that never answers, without leaving loopback.
    /// </summary>
    public static async Task<Unanswering> UnansweringAsync()
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(0);
        var fillers = Enumerable.Range(0, 4).Select(_ => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)).ToList();
        var connects = fillers.Select(f => f.ConnectAsync(listener.LocalEndPoint!)).ToList();
        // A backlog of 0 holds one connection: once a filler is connected, the queue is full.
        await Task.WhenAny(connects);
        return new Unanswering(listener, fillers);
    }

    public sealed class Unanswering(Socket listener, List<Socket> fillers) : IDisposable
    {
        public IPEndPoint Endpoint => (IPEndPoint)listener.LocalEndPoint!;

        public void Dispose()
        {
            fillers.ForEach(f => f.Dispose());
            listener.Dispose();
        }
    }
}
