namespace Relay.Host.Logging;

/// <summary>How log events are written: <c>--log-format text|json</c>.</summary>
public enum LogFormat
{
    /// <summary>One readable line per event: UTC time, level, rendered message.</summary>
    Text,

    /// <summary>CLEF (compact log event format): one JSON object per line, for jq and log shippers.</summary>
    Json,
}
