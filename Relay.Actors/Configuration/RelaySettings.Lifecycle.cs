using Akka.Configuration;

namespace Relay.Actors.Configuration;

/// <summary>The node-wide lifecycle keys: <c>relay.shutdown-grace</c>.</summary>
public sealed partial record RelaySettings
{
    public static readonly TimeSpan DefaultShutdownGrace = TimeSpan.FromSeconds(30);

    /// <summary>
    /// On SIGTERM or SIGINT, how long open circuits may run to their end after the listeners
    /// have closed; the rest are then reset with reason <c>shutdown</c>.
    /// </summary>
    public TimeSpan ShutdownGrace { get; init; } = DefaultShutdownGrace;

    private static TimeSpan ReadShutdownGrace(Config config)
    {
        var reader = new ConfigReader(config.GetConfig("relay"), "relay");
        // 0s is allowed here (reset at once), unlike the circuit timeouts.
        if (reader.Raw("shutdown-grace")?.Trim() is "0" or "0s" or "0ms")
        {
            return TimeSpan.Zero;
        }

        return reader.Duration("shutdown-grace", ConfigReader.MaxDuration);
    }
}
