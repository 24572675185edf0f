using System.Net;
using System.Net.Sockets;
using Relay.Actors.Circuits.Internal;
using Relay.Actors.Circuits.ProxyProtocol;

namespace Relay.Actors.Circuits;

/// <summary>The circuit's part of the PROXY protocol: the header it sends upstream.</summary>
public sealed partial class CircuitSupervisor
{
    /// <summary>
    /// Writes the route's PROXY protocol header to the just-connected upstream, before the
    /// pumps start, so it precedes every client byte. The source is the circuit's client (the
    /// one a received header named, if any); the destination is what the client connected to:
    /// a received header's destination, the original destination on a transparent route, else
    /// the relay's own address on the client socket.
    /// False when the circuit had to be reset instead.
    /// </summary>
    private bool TrySendProxyHeader()
    {
        var version = _route.ProxyProtocol.Send;
        if (version == ProxyProtocolVersion.Off)
        {
            return true;
        }

        byte[] header;
        try
        {
            // On a transparent route the client dialled the original destination, not the
            // relay: a REDIRECTed socket's local address is the listener's.
            var destination = _entry.ProxiedDestination
                              ?? (_route.Transparent is not null && IPEndPoint.TryParse(_entry.Upstream, out var original)
                                  ? original
                                  : (IPEndPoint)_client.LocalEndPoint!);
            header = ProxyHeaderWriter.Build(version, (IPEndPoint)_entry.Client, destination);
        }
        catch (SocketException e)
        {
            ResetAndClose(CloseReasons.ClientError, $"cannot read the client's addresses for the PROXY header: {e.SocketErrorCode}");
            return false;
        }

        var sent = RawSocket.Send(_upstream!, header, 0, header.Length, out var error);
        if (error == SocketError.Success && sent == header.Length)
        {
            return true;
        }

        // A new connection's send buffer is empty and far larger than a header (at most 107
        // bytes here), so a short or failed write means the connection is already failing.
        ResetAndClose(error == SocketError.Success ? CloseReasons.UpstreamError : CloseReasons.ForSocketError(CircuitSide.Upstream, error),
            $"cannot send the PROXY header: {(error == SocketError.Success ? $"{sent} of {header.Length} bytes" : error.ToString())}");
        return false;
    }
}
