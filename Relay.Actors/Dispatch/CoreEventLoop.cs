using System.Net.Sockets;
using System.Runtime.InteropServices;
using Akka.Actor;
using Relay.Actors.Native;

namespace Relay.Actors.Dispatch;

/// <summary>
/// The socket readiness poller of one core thread: its own epoll instance, waited on by the
/// core thread itself whenever it has no actor work. Readiness of a circuit's sockets is
/// delivered as a message to the circuit's actors on the same thread, so the data path
/// never crosses threads: no hop from the runtime's epoll thread, none through the thread
/// pool. That is the event-loop-per-core model of HAProxy and nginx, with actors on top.
/// <para>
/// Sockets are registered once, edge-triggered, for read and write readiness. An actor that
/// got EAGAIN says what it waits for (<see cref="IoRegistration.AwaitReadable"/>) and is told
/// <see cref="SocketReady"/> on the next edge. Edges while nobody waits are dropped, which is
/// safe because an actor always tries its system call before it waits.
/// </para>
/// All members but <see cref="Wake"/> must be called on the loop's own thread.
/// </summary>
public sealed unsafe class CoreEventLoop : IDisposable
{
    private const int MaxEvents = 256;
    private const ulong WakeToken = ulong.MaxValue;

    [ThreadStatic]
    private static CoreEventLoop? t_current;

    private readonly int _epoll;
    private readonly int _wakeFd;
    private readonly byte* _events;
    private readonly Stack<int> _freeTokens = new();
    private IoRegistration?[] _registrations = new IoRegistration?[256];
    private int _nextToken;
    private uint _generation;
    private long _wakes;
    private bool _disposed;

    internal CoreEventLoop()
    {
        _epoll = Epoll.Create(Epoll.EPOLL_CLOEXEC);
        if (_epoll < 0)
        {
            throw new InvalidOperationException($"epoll_create1 failed: errno {Marshal.GetLastPInvokeError()}");
        }

        _wakeFd = EventFd.Create(0, EventFd.EFD_CLOEXEC | EventFd.EFD_NONBLOCK);
        if (_wakeFd < 0 || Epoll.Add(_epoll, _wakeFd, Epoll.EPOLLIN, WakeToken) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            Unistd.Close(_epoll);
            throw new InvalidOperationException($"eventfd for the core event loop failed: errno {errno}");
        }

        _events = (byte*)NativeMemory.Alloc((nuint)(MaxEvents * Epoll.EventSize));
    }

    /// <summary>The loop of the calling core thread, or null on any other thread.</summary>
    public static CoreEventLoop? Current => t_current;

    /// <summary>The calling thread's loop; circuits must run on a core dispatcher.</summary>
    public static CoreEventLoop Require() =>
        t_current ?? throw new InvalidOperationException(
            "socket I/O of a circuit must run on a core dispatcher (CoreDispatchers.IdFor); this thread has no core event loop");

    /// <summary>
    /// The core thread's own timers (circuits' connect and idle timeouts): the loop's wait
    /// ends when the earliest is due, and they fire on this thread.
    /// </summary>
    public LoopTimers Timers { get; } = new();

    /// <summary>Live registrations, for tests and diagnostics.</summary>
    public int Registrations => _nextToken - _freeTokens.Count;

    /// <summary>The OS thread id (tid) of the loop's thread, read once when it starts.</summary>
    public int ThreadId { get; private set; }

    internal void MakeCurrent()
    {
        ThreadId = ThreadAffinity.CurrentThreadId();
        t_current = this;
    }

    /// <summary>
    /// Watches <paramref name="socket"/> for readiness until <see cref="Unregister"/>. The
    /// socket is switched to non-blocking mode unless it is already (a socket made by the
    /// relay from accept4 or socket with SOCK_NONBLOCK: two fcntl saved); the relay then
    /// does all its I/O on it with plain non-blocking calls.
    /// </summary>
    public IoRegistration Register(Socket socket) =>
        Register(socket, Epoll.EPOLLIN | Epoll.EPOLLOUT | Epoll.EPOLLRDHUP | Epoll.EPOLLET);

    /// <summary>
    /// Watches a listening socket that every core watches too. EPOLLEXCLUSIVE wakes one
    /// waiting core per new connection instead of all of them, and the kernel prefers a core
    /// that is idle in epoll_wait, so accepting follows spare capacity.
    /// </summary>
    public IoRegistration RegisterListener(Socket listener) =>
        Register(listener, Epoll.EPOLLIN | Epoll.EPOLLEXCLUSIVE | Epoll.EPOLLET);

    private IoRegistration Register(Socket socket, uint interest)
    {
        if (socket.Blocking)
        {
            socket.Blocking = false;
        }

        var token = _freeTokens.Count > 0 ? _freeTokens.Pop() : _nextToken++;
        if (token >= _registrations.Length)
        {
            Array.Resize(ref _registrations, _registrations.Length * 2);
        }

        var fd = (int)socket.SafeHandle.DangerousGetHandle();
        var registration = new IoRegistration(this, token, unchecked(++_generation), fd);
        if (Epoll.Add(_epoll, fd, interest, registration.EpollData) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            _freeTokens.Push(token);
            throw new SocketException(errno);
        }

        _registrations[token] = registration;
        return registration;
    }

    /// <summary>
    /// Stops watching. Idempotent. <paramref name="socketClosing"/> says the caller closes the
    /// socket right after: closing a descriptor takes it out of every epoll set, so the
    /// EPOLL_CTL_DEL is skipped (two system calls per circuit). Should an event of the closed
    /// socket still be in flight (its close deferred by a SafeHandle reference elsewhere), the
    /// generation in its token no longer matches and it is dropped.
    /// </summary>
    public void Unregister(IoRegistration registration, bool socketClosing = false)
    {
        if (registration.Unregistered)
        {
            return;
        }

        registration.Unregistered = true;
        registration.ReadWaiter = null;
        registration.WriteWaiter = null;
        if (!socketClosing)
        {
            Epoll.Remove(_epoll, registration.Fd);
        }

        _registrations[registration.Token] = null;
        _freeTokens.Push(registration.Token);
    }

    /// <summary>
    /// Waits up to <paramref name="timeoutMs"/> (-1: until something happens) and tells each
    /// waiting actor its socket is ready. Returns how many events arrived.
    /// </summary>
    internal int Poll(int timeoutMs)
    {
        var count = Wait(timeoutMs);
        Dispatch(count);
        return count;
    }

    /// <summary>
    /// epoll_wait alone, so the executor can mark itself awake before <see cref="Dispatch"/>
    /// tells actors on its own thread (a tell to a sleeping thread writes the wake eventfd).
    /// The wait ends early when a timer is due.
    /// </summary>
    internal int Wait(int timeoutMs)
    {
        var untilTimer = Timers.MillisUntilNext();
        if (untilTimer >= 0 && (timeoutMs < 0 || untilTimer < timeoutMs))
        {
            timeoutMs = untilTimer;
        }

        return Epoll.Wait(_epoll, _events, MaxEvents, timeoutMs);
    }

    /// <summary>Tells the waiters of the <paramref name="count"/> events the last <see cref="Wait"/> returned, then fires due timers.</summary>
    internal void Dispatch(int count)
    {
        for (var i = 0; i < count; i++)
        {
            var ev = _events + (i * Epoll.EventSize);
            var flags = *(uint*)ev;
            var token = *(ulong*)(ev + Epoll.DataOffset);
            if (token == WakeToken)
            {
                ulong drained;
                Unistd.Read(_wakeFd, (byte*)&drained, sizeof(ulong));
                continue;
            }

            var registration = _registrations[(int)(uint)token];
            if (registration is null || registration.Generation != (uint)(token >> 32))
            {
                // A socket unregistered while its event was queued, or one whose slot has
                // been reused since.
                continue;
            }

            if ((flags & (Epoll.EPOLLIN | Epoll.EPOLLRDHUP | Epoll.EPOLLHUP | Epoll.EPOLLERR)) != 0)
            {
                // Remembered even when nobody waits, so a reader can tell a drained socket
                // from one whose edge came while it was busy (see IoRegistration).
                registration.InputSeen = true;
                if ((flags & (Epoll.EPOLLRDHUP | Epoll.EPOLLHUP | Epoll.EPOLLERR)) != 0)
                {
                    registration.InputEnded = true;
                    if ((flags & (Epoll.EPOLLHUP | Epoll.EPOLLERR)) != 0)
                    {
                        registration.Faulted = true;
                    }
                }

                if (registration.ReadWaiter is { } reader)
                {
                    registration.ReadWaiter = null;
                    reader.Tell(registration.ReadMessage, ActorRefs.NoSender);
                }
            }

            if ((flags & (Epoll.EPOLLOUT | Epoll.EPOLLHUP | Epoll.EPOLLERR)) != 0 && registration.WriteWaiter is { } writer)
            {
                registration.WriteWaiter = null;
                writer.Tell(registration.WriteMessage, ActorRefs.NoSender);
            }
        }

        Timers.FireDue();
    }

    /// <summary>How many times the wake eventfd was written, for tests and diagnostics.</summary>
    internal long Wakes => Interlocked.Read(ref _wakes);

    /// <summary>Wakes the loop's thread out of <see cref="Poll"/>; any thread may call it.</summary>
    internal void Wake()
    {
        Interlocked.Increment(ref _wakes);
        ulong one = 1;
        Unistd.Write(_wakeFd, (byte*)&one, sizeof(ulong));
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Unistd.Close(_wakeFd);
        Unistd.Close(_epoll);
        NativeMemory.Free(_events);
        if (t_current == this)
        {
            t_current = null;
        }
    }
}

/// <summary>
/// One socket watched by a <see cref="CoreEventLoop"/>. The actors of the circuit that owns
/// the socket (all on the loop's thread) say here what they wait for.
/// </summary>
public sealed class IoRegistration
{
    internal IoRegistration(CoreEventLoop loop, int token, uint generation, int fd)
    {
        Loop = loop;
        Token = token;
        Generation = generation;
        Fd = fd;
    }

    public CoreEventLoop Loop { get; }

    internal int Token { get; }

    /// <summary>Which use of the token slot this is; epoll hands it back with each event.</summary>
    internal uint Generation { get; }

    internal ulong EpollData => ((ulong)Generation << 32) | (uint)Token;

    internal int Fd { get; }

    internal bool Unregistered { get; set; }

    internal IActorRef? ReadWaiter { get; set; }

    internal IActorRef? WriteWaiter { get; set; }

    /// <summary>What <see cref="ReadWaiter"/> is told: <see cref="SocketReady"/> unless it asked for its own message.</summary>
    internal object ReadMessage { get; private set; } = SocketReady.Instance;

    internal object WriteMessage { get; private set; } = SocketReady.Instance;

    /// <summary>
    /// Whether an input edge (data, FIN, reset) has been collected since the last
    /// <see cref="AwaitReadable"/>. False means any input there is now has an edge still to
    /// come, so a reader may wait without a speculative recv that would only say EAGAIN
    /// (the upstream reader's first read, one system call per circuit).
    /// </summary>
    public bool InputSeen { get; internal set; }

    /// <summary>
    /// Sticky: epoll has reported the peer's FIN (EPOLLRDHUP), a hang-up or an error. Until
    /// then a short read drained the socket, because any byte or FIN arriving after the edge
    /// that was collected raises a new one; a reader may wait instead of calling recv again
    /// for an EAGAIN (one system call per read burst: a third of a keep-alive request's).
    /// After it, the reader reads on to collect the EOF or the error.
    /// </summary>
    public bool InputEnded { get; internal set; }

    /// <summary>
    /// Sticky: epoll has reported a hang-up or an error (EPOLLHUP, EPOLLERR), not merely the
    /// peer's FIN. A connecting socket whose first edge comes without it has connected, so its
    /// outcome needs no SO_ERROR query (see NonBlockingConnect.Finish).
    /// </summary>
    public bool Faulted { get; internal set; }

    /// <summary><paramref name="actor"/> is told <see cref="SocketReady"/> when the socket may have data (or EOF, or an error).</summary>
    public void AwaitReadable(IActorRef actor) => AwaitReadable(actor, SocketReady.Instance);

    /// <summary>
    /// As <see cref="AwaitReadable(IActorRef)"/>, telling <paramref name="ready"/> instead: an
    /// actor that watches several sockets learns which one (keep it a preallocated singleton).
    /// </summary>
    public void AwaitReadable(IActorRef actor, object ready)
    {
        if (!Unregistered)
        {
            InputSeen = false;
            ReadMessage = ready;
            ReadWaiter = actor;
        }
    }

    /// <summary><paramref name="actor"/> is told <see cref="SocketReady"/> when the socket may take data (or has connected, or failed).</summary>
    public void AwaitWritable(IActorRef actor) => AwaitWritable(actor, SocketReady.Instance);

    /// <summary>As <see cref="AwaitWritable(IActorRef)"/>, telling <paramref name="ready"/> instead.</summary>
    public void AwaitWritable(IActorRef actor, object ready)
    {
        if (!Unregistered)
        {
            WriteMessage = ready;
            WriteWaiter = actor;
        }
    }
}

/// <summary>
/// A watched socket may be ready: try the system call again. A singleton, so readiness
/// allocates nothing; dead letters of it (a circuit stopping) are expected.
/// </summary>
public sealed class SocketReady : Akka.Event.IDeadLetterSuppression, INoSerializationVerificationNeeded
{
    public static readonly SocketReady Instance = new();

    private SocketReady()
    {
    }
}
