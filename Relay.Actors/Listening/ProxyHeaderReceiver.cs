using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Event;
using Relay.Actors.Circuits.ProxyProtocol;
using Relay.Actors.Configuration;
using Relay.Actors.Dispatch;
using Relay.Actors.Internal;
using Relay.Actors.Listening.Admission;
using Relay.Actors.Logging;
using Relay.Actors.Metrics;
using Relay.Actors.Native;
using Relay.Actors.Sockets;

namespace Relay.Actors.Listening;

/// <summary>
/// Reads the PROXY protocol header of one connection accepted on an accept-proxy-protocol
/// route, before any circuit exists: the header decides who the client is, and so whether
/// the access list and per-source limits admit it. A child of the acceptor, on its core.
/// <para>
/// The header is peeked (MSG_PEEK) until it is complete, then exactly its length is read, so
/// the client's first payload bytes stay in the socket for the circuit's reader. The whole
/// header must arrive within <see cref="ProxyProtocolSettings.HeaderTimeout"/> of accept, a
/// total deadline that a client dribbling bytes cannot stretch. Anything malformed resets the
/// connection and is logged (<c>ProxyHeaderRejected</c>, throttled per route).
/// </para>
/// </summary>
internal sealed class ProxyHeaderReceiver : UntypedActor
{
    private readonly Socket _client;
    private readonly IPEndPoint _peer;
    private readonly AdmissionTicket _ticket;
    private readonly RouteSettings _route;
    private readonly RouteAdmission _admission;
    private readonly RouteMetrics _metrics;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private IoRegistration? _io;
    private ICancelable? _timeout;
    private int _lastPeeked = -1;
    private bool _done;

    public ProxyHeaderReceiver(Socket client, IPEndPoint peer, AdmissionTicket ticket, RouteSettings route, RouteAdmission admission,
        RouteMetrics metrics)
    {
        _client = client;
        _peer = peer;
        _ticket = ticket;
        _route = route;
        _admission = admission;
        _metrics = metrics;
    }

    public static Props Props(Socket client, IPEndPoint peer, AdmissionTicket ticket, RouteSettings route, RouteAdmission admission,
        RouteMetrics metrics, string dispatcher) =>
        PropsFactory.Of(() => new ProxyHeaderReceiver(client, peer, ticket, route, admission, metrics), dispatcher);

    /// <summary>To the acceptor: a valid header arrived and was consumed; the socket is its again.</summary>
    internal sealed record Received(Socket Client, IPEndPoint Peer, ProxyHeader Header, AdmissionTicket Ticket)
        : INoSerializationVerificationNeeded;

    protected override void PreStart()
    {
        try
        {
            _io = CoreEventLoop.Require().Register(_client);
        }
        catch (SocketException e)
        {
            Reject($"cannot watch the connection: {e.SocketErrorCode}");
            return;
        }

        _timeout = Context.System.Scheduler.ScheduleTellOnceCancelable(
            _route.ProxyProtocol.HeaderTimeout, Self, TimedOut.Instance, Self);
        TryReceive();
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case SocketReady when !_done:
                TryReceive();
                break;

            case TimedOut when !_done:
                Reject($"no complete header within {_route.ProxyProtocol.HeaderTimeout.TotalSeconds:0.###}s");
                break;

            case SocketReady or TimedOut:
                break;

            default:
                Unhandled(message);
                break;
        }
    }

    private void TryReceive()
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ProxyHeaderParser.MaxLength);
        try
        {
            var peeked = RawSocket.Peek(_client, buffer, ProxyHeaderParser.MaxLength, out var error);
            if (error == SocketError.WouldBlock)
            {
                _io!.AwaitReadable(Self);
                return;
            }

            if (error != SocketError.Success)
            {
                Reject($"the connection failed before its header ({error})");
                return;
            }

            if (peeked == 0)
            {
                Reject("the client closed before sending a header");
                return;
            }

            var result = ProxyHeaderParser.Parse(buffer.AsSpan(0, peeked));
            switch (result.Status)
            {
                case ProxyParseStatus.Invalid:
                    Reject(result.Problem!);
                    return;

                case ProxyParseStatus.Incomplete:
                    // A peek shows the same bytes until new ones come, and an EOF behind a
                    // partial header never reads as 0: look at the TCP state instead.
                    if (peeked == _lastPeeked && PeerHasClosed())
                    {
                        Reject("the client closed in the middle of its header");
                        return;
                    }

                    _lastPeeked = peeked;
                    _io!.AwaitReadable(Self);
                    return;
            }

            // Consume exactly the header; the bytes after it are the client's payload.
            var read = RawSocket.Receive(_client, buffer, result.Length, out error);
            if (error != SocketError.Success || read != result.Length)
            {
                Reject($"the header could not be read back ({error})");
                return;
            }

            HandOver(result.Header!);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private bool PeerHasClosed()
    {
        Span<byte> info = stackalloc byte[8];
        try
        {
            _client.GetRawSocketOption(Inet.IPPROTO_TCP, Tcp.TCP_INFO, info);
            return info[0] == Tcp.TCP_CLOSE_WAIT;
        }
        catch (SocketException)
        {
            return true;
        }
    }

    private void HandOver(ProxyHeader header)
    {
        _done = true;
        _timeout?.Cancel();
        // Out of this core's epoll: the circuit registers the socket on the core it runs on.
        if (_io is { } io)
        {
            io.Loop.Unregister(io);
            _io = null;
        }

        Context.Parent.Tell(new Received(_client, _peer, header, _ticket));
        Context.Stop(Self);
    }

    private void Reject(string problem)
    {
        _done = true;
        _timeout?.Cancel();
        _metrics.OnRefused(RefusalReasons.ProxyHeader);
        if (_admission.HeaderLog.ShouldLog(out var suppressed))
        {
            RelayEvents.ProxyHeaderRejected.Log(_log, _route.Name, _peer.ToString(), problem, suppressed);
        }

        Close();
        Context.Stop(Self);
    }

    private void Close()
    {
        if (_io is { } io)
        {
            io.Loop.Unregister(io);
            _io = null;
        }

        AcceptorActor.ResetQuietly(_client);
        _ticket.Release();
    }

    protected override void PostStop()
    {
        // Stopped before a verdict (the node stopping): the connection and its counts go.
        if (!_done)
        {
            _done = true;
            _timeout?.Cancel();
            Close();
        }
    }

    private sealed class TimedOut : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly TimedOut Instance = new();
    }
}
