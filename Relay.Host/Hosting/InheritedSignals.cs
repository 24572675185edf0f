using Relay.Actors.Native;

namespace Relay.Host.Hosting;

/// <summary>
/// Takes back a signal the relay was started with ignored, so that a
/// <see cref="PosixSignalRegistration"/> for it is delivered.
/// </summary>
/// <remarks>
/// An ignored disposition is inherited across fork and exec: <c>nohup</c>, a shell's
/// <c>trap "" HUP</c> and some supervisors start the relay with SIGHUP ignored. The .NET
/// runtime honours that: when a signal is SIG_IGN at the time of the first registration for
/// it, it installs no handler, and the registration's callback never runs. SIGHUP means
/// "reload" to the relay, as to nginx and HAProxy, which install their handler whatever they
/// inherited; so the relay puts SIGHUP back to its default action just before it registers,
/// and the registration then installs the runtime's handler.
/// </remarks>
internal static unsafe class InheritedSignals
{
    public const int SigHup = Signal.SIGHUP;

    /// <summary>
    /// When <paramref name="signal"/> is ignored, gives it its default action (call right
    /// before registering for it). Returns whether it was ignored.
    /// </summary>
    public static bool StopIgnoring(int signal)
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        var current = stackalloc byte[Signal.SigactionBytes];
        if (Signal.Sigaction(signal, null, current) != 0 || *(nint*)current != Signal.SIG_IGN)
        {
            return false;
        }

        // All zero: SIG_DFL, an empty mask, no flags.
        var standard = stackalloc byte[Signal.SigactionBytes];
        new Span<byte>(standard, Signal.SigactionBytes).Clear();
        return Signal.Sigaction(signal, standard, null) == 0;
    }
}
