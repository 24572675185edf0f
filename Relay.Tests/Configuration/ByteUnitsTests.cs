using Relay.Actors.Configuration;

namespace Relay.Tests.Configuration;

public class ByteUnitsTests
{
    [Theory]
    [InlineData(0, "0 bytes", "0")]
    [InlineData(1536, "1536 bytes", "1536")]
    [InlineData(1024, "1 KiB", "1k")]
    [InlineData(65536, "64 KiB", "64k")]
    [InlineData(3L << 20, "3 MiB", "3m")]
    [InlineData((1L << 30) + 1024, "1048577 KiB", "1048577k")]
    [InlineData(2L << 30, "2 GiB", "2g")]
    public void Exact_sizes_use_the_largest_unit_that_divides(long bytes, string words, string hocon)
    {
        Assert.Equal(words, ByteUnits.Words.Exact(bytes));
        Assert.Equal(hocon, ByteUnits.Hocon.Exact(bytes));
    }

    [Theory]
    [InlineData(512, "512 B", "512")]
    [InlineData(1536, "2 KiB", "1.5K")]
    [InlineData((12L << 20) + (3L << 17), "12.4 MiB", "12.4M")]
    [InlineData(3L << 29, "1.50 GiB", "1.5G")]
    public void Rounded_sizes_use_the_largest_unit_not_above(long bytes, string symbols, string letters)
    {
        Assert.Equal(symbols, ByteUnits.Symbols.Rounded(bytes, "0", "0.0", "0.00"));
        Assert.Equal(letters, ByteUnits.Letters.Rounded(bytes, "0.0", "0.0", "0.0"));
    }
}
