namespace Relay.Actors.Tuning;

/// <summary>
/// The kernel refused a socket option from the config. The message is one line that names the
/// option and the value (and, for TCP_CONGESTION, what the kernel offers), fit for the console.
/// </summary>
public sealed class SocketTuningException : Exception
{
    public SocketTuningException(string option, string value, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Option = option;
        Value = value;
    }

    /// <summary>The option as the kernel names it, e.g. <c>TCP_CONGESTION</c>.</summary>
    public string Option { get; }

    /// <summary>The value that was refused, as configured.</summary>
    public string Value { get; }
}
