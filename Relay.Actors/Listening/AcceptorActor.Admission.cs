using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Event;
using Relay.Actors.Listening.Admission;
using Relay.Actors.Logging;

namespace Relay.Actors.Listening;

/// <summary>
/// The acceptor's admission hooks: the access list and limits decide each accepted
/// connection (<see cref="RouteAdmission"/>), an accept-proxy-protocol route reads the
/// client's header first (<see cref="ProxyHeaderReceiver"/>), and running out of descriptors
/// pauses accepting with a back-off instead of spinning or dying.
/// </summary>
public sealed partial class AcceptorActor
{
    // nginx waits 500 ms after EMFILE; starting lower and doubling resumes sooner after a
    // short spike, and the cap keeps a long exhaustion to one cheap attempt a second.
    private static readonly TimeSpan FirstPauseDelay = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan MaxPauseDelay = TimeSpan.FromSeconds(1);

    private RouteAdmission? _admissionOfRoute;
    private TimeSpan _pauseDelay;
    private long _pausedAtMs;
    private bool _paused;

    private RouteAdmission Admission => _admissionOfRoute ??= _node.Admission.ForRoute(_route);

    /// <summary>An accepted connection: admit it, read its PROXY header first, or refuse it.</summary>
    private void Admit(Socket client)
    {
        _metrics.OnAccepted();
        IPEndPoint? peer;
        try
        {
            peer = client.RemoteEndPoint as IPEndPoint;
        }
        catch (SocketException)
        {
            peer = null;
        }

        if (peer is null)
        {
            // The client reset between the handshake and accept (getpeername says ENOTCONN):
            // there is no circuit to make, only a descriptor to give back.
            client.Dispose();
            return;
        }

        var proxied = _route.ProxyProtocol.Accept;
        // Behind a proxy the peer is the proxy: who the client is, the header will say.
        var ticket = Admission.TryAdmit(proxied ? null : peer.Address, out var reason);
        if (ticket is null)
        {
            Refuse(client, peer, reason);
            return;
        }

        if (proxied)
        {
            Context.ActorOf(ProxyHeaderReceiver.Props(client, peer, ticket, _route, Admission, _metrics, Context.Props.Dispatcher));
            return;
        }

        StartCircuit(client, peer, ticket, proxiedDestination: null);
    }

    private void OnProxyHeaderReceived(ProxyHeaderReceiver.Received received)
    {
        var client = received.Header.Source ?? received.Peer;
        if (!Admission.TryAdmitSource(received.Ticket, client.Address, out var reason))
        {
            Refuse(received.Client, client, reason);
            return;
        }

        StartCircuit(received.Client, client, received.Ticket, received.Header.Destination);
    }

    /// <summary>Resets a refused connection at once, counts it, and logs it at most once a second per route.</summary>
    private void Refuse(Socket client, IPEndPoint who, string reason)
    {
        // Counted before the reset, so whoever sees the reset also sees the count.
        _metrics.OnRefused(reason);
        ResetQuietly(client);
        if (Admission.RefusalLog.ShouldLog(out var suppressed))
        {
            RelayEvents.ClientRefused.Log(_log, _route.Name, who.ToString(), reason, suppressed);
        }
    }

    /// <summary>Closes with SO_LINGER 0: the client sees a reset, and no TIME_WAIT is left here.</summary>
    internal static void ResetQuietly(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already failed or closed: closing is all that is left.
        }

        socket.Dispose();
    }

    /// <summary>
    /// accept4 failed with something other than EAGAIN: EMFILE/ENFILE (descriptors ran out),
    /// ENOBUFS/ENOMEM. The connection stays in the kernel's backlog; the acceptor stops
    /// watching and retries on a doubling timer. The route logs <c>AcceptPaused</c> once,
    /// for its first paused acceptor, not once per attempt or per core.
    /// </summary>
    private void PauseAccepting(SocketError error)
    {
        if (!_paused)
        {
            _paused = true;
            _pausedAtMs = Environment.TickCount64;
            _pauseDelay = FirstPauseDelay;
            if (Admission.EnterPause())
            {
                RelayEvents.AcceptPaused.Log(_log, _route.Name, error.ToString(), (int)FirstPauseDelay.TotalMilliseconds, (int)MaxPauseDelay.TotalMilliseconds);
            }
        }
        else
        {
            _pauseDelay = TimeSpan.FromTicks(Math.Min(_pauseDelay.Ticks * 2, MaxPauseDelay.Ticks));
        }

        Timers.StartSingleTimer(RetryAccept.Instance, RetryAccept.Instance, _pauseDelay);
    }

    /// <summary>accept4 worked (or found the queue empty): the pause, if any, is over.</summary>
    private void ResumeIfPaused()
    {
        if (!_paused)
        {
            return;
        }

        _paused = false;
        if (Admission.LeavePause())
        {
            RelayEvents.AcceptResumed.Log(_log, _route.Name, Environment.TickCount64 - _pausedAtMs);
        }
    }

    /// <summary>Leaving the loop for good (drain, stop) while paused: no longer counts as paused.</summary>
    private void ForgetPause()
    {
        if (_paused)
        {
            _paused = false;
            Admission.LeavePause();
        }
    }
}
