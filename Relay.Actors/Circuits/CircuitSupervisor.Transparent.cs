using System.Net;
using System.Net.Sockets;
using Akka.Event;
using Relay.Actors.Configuration;
using Relay.Actors.Transparent;

namespace Relay.Actors.Circuits;

/// <summary>
/// Transparent gateway mode (issue 5): the circuit of a <c>mode = transparent</c> route
/// connects to its connection's original destination, if the route's destination policy
/// and the loop guard allow it.
/// </summary>
public sealed partial class CircuitSupervisor
{
    /// <summary>
    /// For a transparent route, decides the destination and starts connecting (or refuses)
    /// and returns true; for a forward route does nothing and returns false.
    /// </summary>
    private bool TryBeginTransparentConnect()
    {
        if (_route.Transparent is not { } transparent)
        {
            return false;
        }

        var destination = OriginalDestination.Find(_client, transparent.Interception, out var problem);
        if (destination is null)
        {
            ResetAndClose(CloseReasons.NoOriginalDestination, problem);
            return true;
        }

        // Shown from now on (GET /circuits, CircuitClosed), a refused destination included.
        _entry.SetUpstream(destination);
        var refusal = transparent.Destinations.Check(destination);
        if (refusal is null && ListeningAddresses.For(Context.System).FindLoop(destination) is { } own)
        {
            refusal = $"{destination} is the relay's own listening address {own} (a loop)";
        }

        if (refusal is not null)
        {
            Log.Warning("{EventName:l} circuit {CircuitId} on {Route} from {Client} to {Destination} refused: {Problem}",
                new object[] { "DestinationDenied", _entry.Id, _entry.Route, ClientText, _entry.Upstream, refusal });
            ResetAndClose(CloseReasons.DestinationDenied, refusal);
            return true;
        }

        ArmConnectTimer();
        BeginConnect(destination);
        return true;
    }

    /// <summary>
    /// Before connect: with <c>upstream-source = client</c> the upstream socket takes the
    /// client's address, so the server sees the real client.
    /// </summary>
    private void PrepareUpstreamSource(Socket upstream, IPEndPoint destination)
    {
        if (_route.Transparent is { UpstreamSource: UpstreamSource.Client } && _entry.Client is IPEndPoint client)
        {
            TransparentSockets.BindToClient(upstream, client, destination);
        }
    }
}
