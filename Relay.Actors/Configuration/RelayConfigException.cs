namespace Relay.Actors.Configuration;

/// <summary>
/// A configuration value that cannot be used. The message is one line naming the key
/// path and the bad value, fit to print to an operator as it is.
/// </summary>
public sealed class RelayConfigException : Exception
{
    public RelayConfigException(string key, string? value, string problem)
        : base(value is null ? $"{key}: {problem}" : $"{key} = \"{value}\": {problem}")
    {
        Key = key;
        Value = value;
    }

    public string Key { get; }

    public string? Value { get; }
}
