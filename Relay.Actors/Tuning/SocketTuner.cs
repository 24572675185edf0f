using System.Net.Sockets;
using Relay.Actors.Configuration;

namespace Relay.Actors.Tuning;

/// <summary>PLACEHOLDER (owned by the tuning work): applies one side's socket options.</summary>
public static class SocketTuner
{
    public static void Apply(Socket socket, SocketSideSettings side)
    {
        socket.NoDelay = side.NoDelay;
    }
}
