using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;
using Relay.Actors.Configuration;
using Relay.Actors.Sockets;

namespace Relay.Actors.Circuits.ProxyProtocol;

/// <summary>
/// INTERNAL API. The circuit's part of the PROXY protocol: the header it writes to its
/// just-connected upstream, before the pumps start, so it precedes every client byte.
/// </summary>
internal static class UpstreamProxyHeader
{
    /// <summary>
    /// Writes <paramref name="route"/>'s header to <paramref name="upstream"/>, if the route
    /// sends one. The source is the circuit's client (the one a received header named, if
    /// any); the destination is what the client connected to: a received header's
    /// destination, the original destination on a transparent route, else the relay's own
    /// address on the client socket.
    /// False, with the close reason and its detail, when the circuit must be reset instead.
    /// </summary>
    public static bool TrySend(RouteSettings route, CircuitEntry entry, SafeSocketHandle client, SafeSocketHandle upstream,
        [NotNullWhen(false)] out string? reason, [NotNullWhen(false)] out string? detail)
    {
        reason = null;
        detail = null;
        var version = route.ProxyProtocol.Send;
        if (version == ProxyProtocolVersion.Off)
        {
            return true;
        }

        byte[] header;
        try
        {
            // On a transparent route the client dialled the original destination, not the
            // relay: a REDIRECTed socket's local address is the listener's.
            var destination = entry.ProxiedDestination
                              ?? (route.Transparent is not null && IPEndPoint.TryParse(entry.Upstream, out var original)
                                  ? original
                                  : (IPEndPoint)CircuitSockets.ConnectedView(client).LocalEndPoint!);
            header = ProxyHeaderWriter.Build(version, (IPEndPoint)entry.Client, destination);
        }
        catch (SocketException e)
        {
            reason = CloseReasons.ClientError;
            detail = $"cannot read the client's addresses for the PROXY header: {e.SocketErrorCode}";
            return false;
        }

        var sent = RawSocket.Send(upstream, header, 0, header.Length, out var error);
        if (error == SocketError.Success && sent == header.Length)
        {
            return true;
        }

        // A new connection's send buffer is empty and far larger than a header (at most 107
        // bytes here), so a short or failed write means the connection is already failing.
        reason = error == SocketError.Success ? CloseReasons.UpstreamError : CloseReasons.ForSocketError(CircuitSide.Upstream, error);
        detail = $"cannot send the PROXY header: {(error == SocketError.Success ? $"{sent} of {header.Length} bytes" : error.ToString())}";
        return false;
    }
}
