using Relay.Actors.Native;

namespace Relay.Actors.Listening;

/// <summary>
/// A few descriptors held in reserve so that running out of them stays an accept problem.
/// <para>
/// When accept4 fails with EMFILE/ENFILE the descriptor table is full, and the .NET runtime
/// itself needs descriptors now and then (loading an assembly, growing executable memory,
/// starting a thread): without one it fails with "Out of memory." and the process dies,
/// taking every circuit with it. Seen in the descriptor exhaustion test under load. So the
/// node opens <see cref="Size"/> descriptors on /dev/null at start; the first acceptor that
/// hits EMFILE/ENFILE gives them back (<see cref="Release"/>), and every acceptor of every
/// route stays paused until the reserve can be taken again (<see cref="TryReacquire"/>),
/// which is exactly when descriptors have been freed. The reserve's headroom is for the
/// runtime, logging and the upstream sockets of circuits already accepted, never for more
/// clients. (libuv's "EMFILE trick" holds one such descriptor to shed clients; here it
/// protects the process instead.)
/// </para>
/// Process-wide (descriptors are), shared by every node in the process; thread-safe.
/// </summary>
internal static class DescriptorReserve
{
    /// <summary>How many descriptors are kept back.</summary>
    public const int Size = 16;

    private static readonly Lock Gate = new();
    private static readonly List<int> Held = new();
    private static volatile bool _released;

    /// <summary>True from a <see cref="Release"/> until the next successful <see cref="TryReacquire"/>: no acceptor may accept.</summary>
    public static bool IsReleased => _released;

    /// <summary>Opens the reserve if it is not held yet (node start). Quietly holds fewer if descriptors are short.</summary>
    public static void Ensure()
    {
        lock (Gate)
        {
            if (!_released && Held.Count == 0)
            {
                OpenUpTo(Size);
            }
        }
    }

    /// <summary>Descriptors ran out: give the reserve back to the process and hold acceptors back.</summary>
    public static void Release()
    {
        lock (Gate)
        {
            _released = true;
            foreach (var fd in Held)
            {
                Unistd.Close(fd);
            }

            Held.Clear();
        }
    }

    /// <summary>
    /// Takes the whole reserve again; true when it is held (or was never released). False
    /// while descriptors are still short, and then nothing is kept.
    /// </summary>
    public static bool TryReacquire()
    {
        lock (Gate)
        {
            if (!_released)
            {
                return true;
            }

            if (!OpenUpTo(Size))
            {
                Held.ForEach(fd => Unistd.Close(fd));
                Held.Clear();
                return false;
            }

            _released = false;
            return true;
        }
    }

    private static bool OpenUpTo(int count)
    {
        while (Held.Count < count)
        {
            var fd = Fcntl.Open("/dev/null", Fcntl.O_RDONLY | Fcntl.O_CLOEXEC);
            if (fd < 0)
            {
                return false;
            }

            Held.Add(fd);
        }

        return true;
    }
}
