using System.Buffers.Binary;
using System.Net;
using System.Text;
using Relay.Actors.Circuits.ProxyProtocol;

namespace Relay.Tests.Circuits.ProxyProtocol;

/// <summary>
/// The PROXY protocol codec against the specification's examples, round trips, every
/// truncation, known malformations, and random and mutated inputs that must only ever give
/// a result, never an exception.
/// </summary>
public sealed class ProxyHeaderCodecTests
{
    private static readonly IPEndPoint V4Source = new(IPAddress.Parse("198.18.0.7"), 56324);
    private static readonly IPEndPoint V4Destination = new(IPAddress.Parse("198.19.1.2"), 443);
    private static readonly IPEndPoint V6Source = new(IPAddress.Parse("2001:db8::1"), 40000);
    private static readonly IPEndPoint V6Destination = new(IPAddress.Parse("2001:db8:ffff::2:3"), 8443);

    public static TheoryData<ProxyProtocolVersion, string, string> RoundTrips => new()
    {
        { ProxyProtocolVersion.V1, "198.18.0.7:56324", "198.19.1.2:443" },
        { ProxyProtocolVersion.V1, "[2001:db8::1]:40000", "[2001:db8:ffff::2:3]:8443" },
        { ProxyProtocolVersion.V1, "0.0.0.0:0", "255.255.255.255:65535" },
        { ProxyProtocolVersion.V1, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", "[::]:0" },
        { ProxyProtocolVersion.V2, "198.18.0.7:56324", "198.19.1.2:443" },
        { ProxyProtocolVersion.V2, "[2001:db8::1]:40000", "[2001:db8:ffff::2:3]:8443" },
        { ProxyProtocolVersion.V2, "0.0.0.0:0", "255.255.255.255:65535" },
    };

    [Theory]
    [MemberData(nameof(RoundTrips))]
    public void A_written_header_parses_back_to_the_same_addresses_and_its_exact_length(ProxyProtocolVersion version, string source, string destination)
    {
        var from = IPEndPoint.Parse(source);
        var to = IPEndPoint.Parse(destination);
        var header = ProxyHeaderWriter.Build(version, from, to);
        var payload = "GET / HTTP/1.1\r\n"u8.ToArray();

        var result = ProxyHeaderParser.Parse([.. header, .. payload]);

        Assert.Equal(ProxyParseStatus.Complete, result.Status);
        Assert.Equal(header.Length, result.Length);
        Assert.Equal(version == ProxyProtocolVersion.V1 ? 1 : 2, result.Header!.Version);
        Assert.Equal(from, result.Header.Source);
        Assert.Equal(to, result.Header.Destination);
        Assert.True(header.Length <= ProxyHeaderWriter.MaxLength);
    }

    [Fact]
    public void V1_is_the_specifications_text_line()
    {
        Assert.Equal("PROXY TCP4 198.18.0.7 198.19.1.2 56324 443\r\n",
            Encoding.ASCII.GetString(ProxyHeaderWriter.Build(ProxyProtocolVersion.V1, V4Source, V4Destination)));
        Assert.Equal("PROXY TCP6 2001:db8::1 2001:db8:ffff::2:3 40000 8443\r\n",
            Encoding.ASCII.GetString(ProxyHeaderWriter.Build(ProxyProtocolVersion.V1, V6Source, V6Destination)));
    }

    [Fact]
    public void V2_is_the_signature_then_version_command_family_length_and_addresses()
    {
        var header = ProxyHeaderWriter.Build(ProxyProtocolVersion.V2, V4Source, V4Destination);
        Assert.Equal(28, header.Length);
        Assert.Equal(Convert.FromHexString("0D0A0D0A000D0A515549540A"), header[..12]);
        Assert.Equal(0x21, header[12]); // version 2, PROXY
        Assert.Equal(0x11, header[13]); // AF_INET, STREAM
        Assert.Equal(12, BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(14)));
        Assert.Equal(new byte[] { 198, 18, 0, 7, 198, 19, 1, 2 }, header[16..24]);
        Assert.Equal(56324, BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(24)));
        Assert.Equal(443, BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(26)));
        Assert.Equal(52, ProxyHeaderWriter.Build(ProxyProtocolVersion.V2, V6Source, V6Destination).Length);
    }

    [Fact]
    public void An_ipv4_client_of_a_dual_stack_listener_is_written_as_ipv4_and_a_real_mix_as_ipv6()
    {
        var mapped = new IPEndPoint(IPAddress.Parse("::ffff:198.18.0.7"), 1234);
        var text = Encoding.ASCII.GetString(ProxyHeaderWriter.Build(ProxyProtocolVersion.V1, mapped, new IPEndPoint(IPAddress.Parse("::ffff:198.19.1.2"), 80)));
        Assert.Equal("PROXY TCP4 198.18.0.7 198.19.1.2 1234 80\r\n", text);

        var mixed = ProxyHeaderParser.Parse(ProxyHeaderWriter.Build(ProxyProtocolVersion.V2, V4Source, V6Destination));
        Assert.Equal(ProxyParseStatus.Complete, mixed.Status);
        Assert.Equal(IPAddress.Parse("::ffff:198.18.0.7"), mixed.Header!.Source!.Address);
    }

    [Theory]
    [InlineData(ProxyProtocolVersion.V1)]
    [InlineData(ProxyProtocolVersion.V2)]
    public void Every_truncation_of_a_valid_header_asks_for_more(ProxyProtocolVersion version)
    {
        foreach (var (from, to) in new[] { (V4Source, V4Destination), (V6Source, V6Destination) })
        {
            var header = ProxyHeaderWriter.Build(version, from, to);
            for (var length = 0; length < header.Length; length++)
            {
                var result = ProxyHeaderParser.Parse(header.AsSpan(0, length));
                Assert.True(result.Status == ProxyParseStatus.Incomplete, $"{length} of {header.Length} bytes gave {result.Status}: {result.Problem}");
            }
        }
    }

    [Theory]
    [InlineData("PROXY UNKNOWN\r\n")]
    [InlineData("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n")]
    public void V1_unknown_is_accepted_without_addresses(string line)
    {
        var result = ProxyHeaderParser.Parse(Encoding.ASCII.GetBytes(line + "payload"));
        Assert.Equal(ProxyParseStatus.Complete, result.Status);
        Assert.Equal(line.Length, result.Length);
        Assert.False(result.Header!.HasAddresses);
    }

    [Theory]
    [InlineData("PROXY TCP4 198.18.0.7 198.19.1.2 56324 443\n", "printable")]           // LF alone
    [InlineData("PROXY TCP4 198.18.0.7 198.19.1.2 56324 443\rX", "CR not followed")]
    [InlineData("PROXY TCP4  198.18.0.7 198.19.1.2 56324 443\r\n", "single spaces")]    // double space
    [InlineData("PROXY TCP4 198.18.0.7 198.19.1.2 56324\r\n", "single spaces")]         // a field missing
    [InlineData("PROXY TCP4 198.18.0.7 198.19.1.2 56324 443 x\r\n", "single spaces")]   // one too many
    [InlineData("PROXY TCP5 198.18.0.7 198.19.1.2 56324 443\r\n", "TCP4, TCP6 or UNKNOWN")]
    [InlineData("PROXY tcp4 198.18.0.7 198.19.1.2 56324 443\r\n", "TCP4, TCP6 or UNKNOWN")]
    [InlineData("PROXY TCP4 198.18.0.07 198.19.1.2 56324 443\r\n", "address")]          // leading zero
    [InlineData("PROXY TCP4 198.18.0.256 198.19.1.2 56324 443\r\n", "address")]
    [InlineData("PROXY TCP4 198.18.7 198.19.1.2 56324 443\r\n", "address")]             // abbreviated
    [InlineData("PROXY TCP4 2001:db8::1 198.19.1.2 56324 443\r\n", "address")]          // family mismatch
    [InlineData("PROXY TCP6 198.18.0.7 2001:db8::2 56324 443\r\n", "address")]
    [InlineData("PROXY TCP6 fe80::1%eth0 2001:db8::2 56324 443\r\n", "address")]        // zone
    [InlineData("PROXY TCP4 198.18.0.7 198.19.1.2 65536 443\r\n", "port")]
    [InlineData("PROXY TCP4 198.18.0.7 198.19.1.2 0443 443\r\n", "port")]
    [InlineData("PROXY TCP4 198.18.0.7 198.19.1.2 -1 443\r\n", "port")]
    [InlineData("PROXY TCP4 198.18.0.7 198.19.1.2 +1 443\r\n", "port")]
    [InlineData("PROXY \r\n", "TCP4, TCP6 or UNKNOWN")]
    [InlineData("PROXY TCP4 198.18.0.7\t198.19.1.2 56324 443\r\n", "printable")]
    [InlineData("PROXX TCP4", "signature")]
    [InlineData("GET / HTTP/1.1\r\n", "signature")]
    [InlineData("proxy TCP4", "signature")]
    public void Malformed_v1_lines_are_rejected_with_a_reason(string text, string problem)
    {
        var result = ProxyHeaderParser.Parse(Encoding.ASCII.GetBytes(text));
        Assert.Equal(ProxyParseStatus.Invalid, result.Status);
        Assert.Contains(problem, result.Problem);
    }

    [Fact]
    public void A_v1_line_without_crlf_in_107_bytes_is_rejected_and_one_of_107_is_accepted()
    {
        var tooLong = Encoding.ASCII.GetBytes("PROXY UNKNOWN " + new string('x', 100));
        Assert.Equal(ProxyParseStatus.Invalid, ProxyHeaderParser.Parse(tooLong).Status);

        var longest = Encoding.ASCII.GetBytes("PROXY UNKNOWN " + new string('x', 107 - 16) + "\r\n");
        Assert.Equal(107, longest.Length);
        Assert.Equal(ProxyParseStatus.Complete, ProxyHeaderParser.Parse(longest).Status);
    }

    [Fact]
    public void V2_local_is_accepted_without_addresses_whatever_its_address_block_says()
    {
        var header = ProxyHeaderWriter.Build(ProxyProtocolVersion.V2, V4Source, V4Destination);
        header[12] = 0x20; // LOCAL
        var result = ProxyHeaderParser.Parse(header);
        Assert.Equal(ProxyParseStatus.Complete, result.Status);
        Assert.False(result.Header!.HasAddresses);

        // The minimal LOCAL header of a health check: AF_UNSPEC, no address block.
        byte[] minimal = [.. Signature(), 0x20, 0x00, 0x00, 0x00];
        Assert.Equal(16, ProxyHeaderParser.Parse(minimal).Length);
    }

    [Fact]
    public void V2_tlvs_are_skipped_and_counted_in_the_header_length()
    {
        byte[] tlvs = [0x01, 0x00, 0x02, (byte)'h', (byte)'2', 0x04, 0x00, 0x00, 0xEA, 0x00, 0x03, 1, 2, 3];
        var header = WithTlvs(ProxyHeaderWriter.Build(ProxyProtocolVersion.V2, V6Source, V6Destination), tlvs);

        var result = ProxyHeaderParser.Parse([.. header, 0x47, 0x45, 0x54]);

        Assert.Equal(ProxyParseStatus.Complete, result.Status);
        Assert.Equal(header.Length, result.Length);
        Assert.Equal(V6Source, result.Header!.Source);
    }

    [Theory]
    [InlineData(new byte[] { 0x01, 0x00 }, "truncated TLV")]
    [InlineData(new byte[] { 0x01, 0x00, 0x05, 1, 2 }, "TLV longer")]
    public void V2_with_a_malformed_tlv_is_rejected(byte[] tlvs, string problem)
    {
        var header = WithTlvs(ProxyHeaderWriter.Build(ProxyProtocolVersion.V2, V4Source, V4Destination), tlvs);
        var result = ProxyHeaderParser.Parse(header);
        Assert.Equal(ProxyParseStatus.Invalid, result.Status);
        Assert.Contains(problem, result.Problem);
    }

    [Theory]
    [InlineData(0x11, 0x11, "version")]  // version 1 in the binary form
    [InlineData(0x22, 0x11, "command")]  // command 2
    [InlineData(0x21, 0x41, "family")]   // family 4
    [InlineData(0x21, 0x13, "family")]   // transport 3
    [InlineData(0x21, 0x12, "STREAM")]   // AF_INET over DGRAM
    [InlineData(0x21, 0x10, "STREAM")]   // AF_INET, transport UNSPEC
    public void V2_with_bad_version_command_family_or_transport_is_rejected(byte versionCommand, byte family, string problem)
    {
        var header = ProxyHeaderWriter.Build(ProxyProtocolVersion.V2, V4Source, V4Destination);
        header[12] = versionCommand;
        header[13] = family;
        var result = ProxyHeaderParser.Parse(header);
        Assert.Equal(ProxyParseStatus.Invalid, result.Status);
        Assert.Contains(problem, result.Problem);
    }

    [Fact]
    public void V2_shorter_than_its_address_family_or_longer_than_4_KiB_is_rejected_before_it_is_read()
    {
        byte[] tooShort = [.. Signature(), 0x21, 0x21, 0x00, 12]; // AF_INET6 needs 36
        Assert.Contains("too short", ProxyHeaderParser.Parse(tooShort).Problem);

        byte[] tooLong = [.. Signature(), 0x21, 0x11, 0x10, 0x00]; // 16 + 4096
        Assert.Contains("longer than", ProxyHeaderParser.Parse(tooLong).Problem);

        byte[] longest = [.. Signature(), 0x21, 0x11, 0x0F, 0xF0, .. new byte[12], 0x00, 0x0F, 0xE1, .. new byte[4065]];
        Assert.Equal(4096, longest.Length);
        Assert.Equal(ProxyParseStatus.Complete, ProxyHeaderParser.Parse(longest).Status);
    }

    [Fact]
    public void Garbage_is_recognised_from_its_first_byte()
    {
        Assert.Equal(ProxyParseStatus.Invalid, ProxyHeaderParser.Parse("\x16\x03\x01"u8).Status); // a TLS hello
        Assert.Equal(ProxyParseStatus.Invalid, ProxyHeaderParser.Parse("\r\n\r\nX"u8).Status);
        Assert.Equal(ProxyParseStatus.Incomplete, ProxyHeaderParser.Parse([]).Status);
    }

    [Fact]
    public void Random_bytes_never_throw_and_never_claim_more_than_they_hold()
    {
        var random = new Random(6);
        var buffer = new byte[512];
        for (var i = 0; i < 200_000; i++)
        {
            var length = random.Next(0, buffer.Length);
            random.NextBytes(buffer.AsSpan(0, length));
            // Half the inputs start like a header, so the fuzzing gets past the first byte.
            switch (i % 4)
            {
                case 1 when length >= 6:
                    "PROXY "u8.CopyTo(buffer);
                    break;
                case 2 when length >= 12:
                    Signature().CopyTo(buffer, 0);
                    break;
            }

            AssertWellBehaved(buffer.AsSpan(0, length));
        }
    }

    [Fact]
    public void Mutated_valid_headers_never_throw_and_never_claim_more_than_they_hold()
    {
        var random = new Random(66);
        var seeds = new List<byte[]>
        {
            ProxyHeaderWriter.Build(ProxyProtocolVersion.V1, V4Source, V4Destination),
            ProxyHeaderWriter.Build(ProxyProtocolVersion.V1, V6Source, V6Destination),
            ProxyHeaderWriter.Build(ProxyProtocolVersion.V2, V4Source, V4Destination),
            ProxyHeaderWriter.Build(ProxyProtocolVersion.V2, V6Source, V6Destination),
            WithTlvs(ProxyHeaderWriter.Build(ProxyProtocolVersion.V2, V4Source, V4Destination), [0x02, 0x00, 0x03, 1, 2, 3]),
            "PROXY UNKNOWN\r\n"u8.ToArray(),
        };

        for (var i = 0; i < 100_000; i++)
        {
            var input = seeds[random.Next(seeds.Count)].ToList();
            var mutations = random.Next(1, 4);
            for (var m = 0; m < mutations; m++)
            {
                var at = random.Next(input.Count + 1);
                switch (random.Next(4))
                {
                    case 0 when at < input.Count:
                        input[at] = (byte)random.Next(256);
                        break;
                    case 1 when at < input.Count:
                        input[at] ^= (byte)(1 << random.Next(8));
                        break;
                    case 2:
                        input.Insert(at, (byte)random.Next(256));
                        break;
                    default:
                        if (at < input.Count)
                        {
                            input.RemoveAt(at);
                        }

                        break;
                }
            }

            AssertWellBehaved(input.ToArray());
        }
    }

    private static void AssertWellBehaved(ReadOnlySpan<byte> input)
    {
        ProxyParseResult result;
        try
        {
            result = ProxyHeaderParser.Parse(input);
        }
        catch (Exception e)
        {
            Assert.Fail($"threw {e.GetType().Name} on {Convert.ToHexString(input)}: {e.Message}");
            return;
        }

        switch (result.Status)
        {
            case ProxyParseStatus.Complete:
                Assert.InRange(result.Length, 15, input.Length); // "PROXY UNKNOWN\r\n" is the shortest
                Assert.NotNull(result.Header);
                break;
            case ProxyParseStatus.Invalid:
                Assert.False(string.IsNullOrEmpty(result.Problem));
                break;
            default:
                Assert.True(input.Length < ProxyHeaderParser.MaxLength, "a verdict must come within MaxLength bytes");
                break;
        }
    }

    private static byte[] Signature() => Convert.FromHexString("0D0A0D0A000D0A515549540A");

    private static byte[] WithTlvs(byte[] header, byte[] tlvs)
    {
        byte[] result = [.. header, .. tlvs];
        BinaryPrimitives.WriteUInt16BigEndian(result.AsSpan(14), (ushort)(result.Length - 16));
        return result;
    }
}
