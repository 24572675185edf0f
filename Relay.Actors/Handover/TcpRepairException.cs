namespace Relay.Actors.Handover;

/// <summary>
/// A TCP_REPAIR step failed for one socket. The message is one line: the operation, the
/// socket's 4-tuple, the step and, for a failed system call, errno as text and number, so a
/// handover's log says which circuit could not move and why without affecting the others.
/// </summary>
public sealed class TcpRepairException : Exception
{
    public TcpRepairException(string message, int errno)
        : base(message) => Errno = errno;

    /// <summary>errno of the failed system call; 0 when no call failed (a state or a queue check).</summary>
    public int Errno { get; }
}
