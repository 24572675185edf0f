using System.Globalization;

namespace Relay.Actors.Configuration;

/// <summary>
/// INTERNAL API. Byte counts in binary units (1k = 1024 bytes), in the spellings Relay writes:
/// words for config errors, HOCON for the effective config, letters and symbols for the tables
/// and progress lines people read. <see cref="Exact"/> keeps every byte (a config value must read
/// back the same); <see cref="Rounded"/> trades bytes for width (a table column, a progress line).
/// </summary>
internal sealed class ByteUnits
{
    /// <summary>Config errors: "1 KiB", "16 MiB", "1536 bytes".</summary>
    public static ByteUnits Words { get; } = new(" bytes", " KiB", " MiB", " GiB");

    /// <summary>What HOCON reads back exactly: "64k", "1m", "1536".</summary>
    public static ByteUnits Hocon { get; } = new("", "k", "m", "g");

    /// <summary>Table columns: "1.5G", "12.0K", "512".</summary>
    public static ByteUnits Letters { get; } = new("", "K", "M", "G");

    /// <summary>Progress lines: "1.50 GiB", "12.3 MiB", "512 B".</summary>
    public static ByteUnits Symbols { get; } = new(" B", " KiB", " MiB", " GiB");

    // Indexed by the power of 1024: bytes, KiB, MiB, GiB.
    private readonly string[] _suffixes;

    private ByteUnits(string bytes, string kibi, string mebi, string gibi) => _suffixes = [bytes, kibi, mebi, gibi];

    /// <summary>In the largest unit that divides <paramref name="bytes"/>, else in bytes: 1024 is "1 KiB", 1536 is "1536 bytes".</summary>
    public string Exact(long bytes)
    {
        for (var power = _suffixes.Length - 1; power > 0; power--)
        {
            var unit = 1L << (10 * power);
            if (bytes != 0 && bytes % unit == 0)
            {
                return (bytes / unit).ToString(CultureInfo.InvariantCulture) + _suffixes[power];
            }
        }

        return bytes.ToString(CultureInfo.InvariantCulture) + _suffixes[0];
    }

    /// <summary>
    /// In the largest unit not above <paramref name="bytes"/>, rounded with that unit's .NET
    /// number format (e.g. "0.0"); below 1 KiB, in whole bytes.
    /// </summary>
    public string Rounded(long bytes, string kibiFormat, string mebiFormat, string gibiFormat)
    {
        ReadOnlySpan<string> formats = [kibiFormat, mebiFormat, gibiFormat];
        for (var power = _suffixes.Length - 1; power > 0; power--)
        {
            var unit = 1L << (10 * power);
            if (bytes >= unit)
            {
                return (bytes / (double)unit).ToString(formats[power - 1], CultureInfo.InvariantCulture) + _suffixes[power];
            }
        }

        return bytes.ToString(CultureInfo.InvariantCulture) + _suffixes[0];
    }
}
