using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Relay.Actors.Circuits.ProxyProtocol;
using Relay.Actors.Configuration;
using Relay.Actors.Listening.Admission;
using Relay.Tests.Management;
using Relay.Tests.Support;

namespace Relay.Tests.Listening;

/// <summary>
/// The PROXY protocol through a real relay: headers sent to upstreams ahead of the client's
/// bytes, headers accepted from clients deciding who the client is, and every bad header
/// (malformed, too slow, random garbage) turned away without a leak.
/// </summary>
public sealed class ProxyProtocolTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private static RouteSettings Route(IPEndPoint upstream, ProxyProtocolVersion send = ProxyProtocolVersion.Off, bool accept = false,
        TimeSpan? headerTimeout = null) =>
        TestSettings.Route(upstream) with { ProxyProtocol = new ProxyProtocolSettings(send, accept, headerTimeout ?? TimeSpan.FromSeconds(5)) };

    [Theory]
    [InlineData(ProxyProtocolVersion.V1)]
    [InlineData(ProxyProtocolVersion.V2)]
    public async Task The_upstream_gets_the_clients_addresses_in_a_header_before_the_clients_first_byte(ProxyProtocolVersion version)
    {
        var received = new TaskCompletionSource<(ProxyHeader Header, byte[] Payload)>();
        await using var server = new TestServer(async socket =>
        {
            var header = await ReadHeaderAsync(socket);
            var payload = await SocketIo.ReadExactlyAsync(socket, 5);
            received.SetResult((header, payload));
        });
        await using var relay = await RelayHarness.StartAsync(TestSettings.Relay(Route(server.Endpoint, version)));

        using var client = await SocketIo.ConnectAsync(relay.Listen());
        await client.SendAsync("hello"u8.ToArray(), SocketFlags.None);
        client.Shutdown(SocketShutdown.Send);

        var (got, payload) = await received.Task.WaitAsync(Wait);
        Assert.Equal("hello"u8.ToArray(), payload);
        Assert.Equal(version == ProxyProtocolVersion.V1 ? 1 : 2, got.Version);
        Assert.Equal(client.LocalEndPoint, got.Source);
        Assert.Equal(relay.Listen(), got.Destination);
    }

    [Fact]
    public async Task The_header_is_followed_by_every_client_byte_intact()
    {
        var upstreamSaw = new TaskCompletionSource<(long Bytes, byte[] Hash)>();
        await using var server = new TestServer(async socket =>
        {
            await ReadHeaderAsync(socket);
            upstreamSaw.SetResult(await SocketIo.ReadToEndAsync(socket));
        });
        await using var relay = await RelayHarness.StartAsync(TestSettings.Relay(Route(server.Endpoint, ProxyProtocolVersion.V1)));

        using var client = await SocketIo.ConnectAsync(relay.Listen());
        var hash = await SocketIo.SendRandomAsync(client, 4 * 1024 * 1024, seed: 61);
        client.Shutdown(SocketShutdown.Send);

        var (bytes, got) = await upstreamSaw.Task.WaitAsync(Wait);
        Assert.Equal(4 * 1024 * 1024, bytes);
        Assert.Equal(hash, got);
    }

    [Theory]
    [InlineData(ProxyProtocolVersion.V1)]
    [InlineData(ProxyProtocolVersion.V2)]
    public async Task An_accepted_header_names_the_client_and_only_the_payload_reaches_the_upstream(ProxyProtocolVersion version)
    {
        await using var server = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(server.Endpoint, "", Route(server.Endpoint, accept: true));
        var original = new IPEndPoint(IPAddress.Parse("198.18.0.7"), 56324);
        var header = ProxyHeaderWriter.Build(version, original, new IPEndPoint(IPAddress.Parse("198.19.1.2"), 443));

        using var client = await SocketIo.ConnectAsync(relay.Listen);
        // Header and payload in one segment: the payload must not be swallowed with the header.
        await client.SendAsync(Join(header, "ping"u8.ToArray()), SocketFlags.None);
        Assert.Equal("ping"u8.ToArray(), await SocketIo.ReadExactlyAsync(client, 4).WaitAsync(Wait));

        var (_, circuits) = await relay.GetJsonAsync("/circuits");
        Assert.Equal("198.18.0.7:56324", circuits.EnumerateArray().Single().GetProperty("client").GetString());

        client.Shutdown(SocketShutdown.Send);
        await SocketIo.ReadToEndAsync(client);
        relay.Log.WaitForJson(j => AdmissionTests.Event(j) == "CircuitClosed" && j.GetProperty("Client").GetString() == "198.18.0.7:56324");
    }

    [Fact]
    public async Task A_header_that_arrives_in_pieces_is_assembled()
    {
        await using var server = new TestServer(TestServer.Echo);
        await using var relay = await RelayHarness.StartAsync(TestSettings.Relay(Route(server.Endpoint, accept: true)));
        var header = ProxyHeaderWriter.Build(ProxyProtocolVersion.V2, new IPEndPoint(IPAddress.Parse("2001:db8::7"), 1000),
            new IPEndPoint(IPAddress.Parse("2001:db8::1"), 80));

        using var client = await SocketIo.ConnectAsync(relay.Listen());
        client.NoDelay = true;
        foreach (var piece in header.Chunk(7))
        {
            await client.SendAsync(piece, SocketFlags.None);
            await Task.Delay(20); // apart, so the relay reads each piece on its own
        }

        await client.SendAsync("pong"u8.ToArray(), SocketFlags.None);
        Assert.Equal("pong"u8.ToArray(), await SocketIo.ReadExactlyAsync(client, 4).WaitAsync(Wait));
        Assert.Equal("[2001:db8::7]:1000", relay.Circuits.Snapshot().Single().Client.ToString());
    }

    [Fact]
    public async Task An_accepted_header_is_passed_on_to_the_upstream_with_the_original_addresses()
    {
        var received = new TaskCompletionSource<ProxyHeader>();
        await using var server = new TestServer(async socket =>
        {
            received.SetResult(await ReadHeaderAsync(socket));
            await TestServer.Echo(socket);
        });
        await using var relay = await RelayHarness.StartAsync(TestSettings.Relay(Route(server.Endpoint, ProxyProtocolVersion.V1, accept: true)));
        var source = new IPEndPoint(IPAddress.Parse("198.18.0.7"), 56324);
        var destination = new IPEndPoint(IPAddress.Parse("198.19.1.2"), 443);

        using var client = await SocketIo.ConnectAsync(relay.Listen());
        await client.SendAsync(ProxyHeaderWriter.Build(ProxyProtocolVersion.V2, source, destination), SocketFlags.None);

        var header = await received.Task.WaitAsync(Wait);
        Assert.Equal(source, header.Source);
        Assert.Equal(destination, header.Destination);
    }

    [Fact]
    public async Task A_local_header_from_the_proxys_health_check_keeps_the_real_peer_as_client()
    {
        await using var server = new TestServer(TestServer.Echo);
        await using var relay = await RelayHarness.StartAsync(TestSettings.Relay(Route(server.Endpoint, accept: true)));

        using var client = await SocketIo.ConnectAsync(relay.Listen());
        byte[] local = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00];
        await client.SendAsync(Join(local, [9]), SocketFlags.None);
        Assert.Equal(new byte[] { 9 }, await SocketIo.ReadExactlyAsync(client, 1).WaitAsync(Wait));
        Assert.Equal(client.LocalEndPoint, relay.Circuits.Snapshot().Single().Client);
    }

    [Fact]
    public async Task The_access_list_and_per_source_limit_apply_to_the_address_in_the_header()
    {
        await using var server = new TestServer(TestServer.Echo);
        var route = Route(server.Endpoint, accept: true) with
        {
            Access = AdmissionTests.Access(deny: ["198.18.0.0/15"]), // the proxy itself (127.0.0.1) is not denied
            Limits = new LimitSettings(null, 1, null),
        };
        await using var relay = await RelayHarness.StartAsync(TestSettings.Relay(route));
        var to = new IPEndPoint(IPAddress.Parse("192.0.2.1"), 80);

        Assert.Equal("reset", await SendHeaderThenReadAsync(relay.Listen(),
            ProxyHeaderWriter.Build(ProxyProtocolVersion.V1, new IPEndPoint(IPAddress.Parse("198.18.0.7"), 1), to)));

        using var held = await SocketIo.ConnectAsync(relay.Listen());
        await held.SendAsync(Join(ProxyHeaderWriter.Build(ProxyProtocolVersion.V1, new IPEndPoint(IPAddress.Parse("203.0.113.5"), 1), to), [1]),
            SocketFlags.None);
        Assert.Equal(new byte[] { 1 }, await SocketIo.ReadExactlyAsync(held, 1).WaitAsync(Wait));
        // Same proxy, same real peer, but a second circuit for the same original client.
        Assert.Equal("reset", await SendHeaderThenReadAsync(relay.Listen(),
            ProxyHeaderWriter.Build(ProxyProtocolVersion.V1, new IPEndPoint(IPAddress.Parse("203.0.113.5"), 2), to)));

        var metrics = relay.Metrics.ForRoute("test");
        Assert.Equal(1, AdmissionTests.Refused(metrics, RefusalReasons.Denied));
        Assert.Equal(1, AdmissionTests.Refused(metrics, RefusalReasons.MaxCircuitsPerSource));
    }

    [Fact]
    public async Task A_malformed_header_resets_the_client_is_logged_and_never_reaches_the_upstream()
    {
        await using var server = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(server.Endpoint, "", Route(server.Endpoint, accept: true));

        Assert.Equal("reset", await SendHeaderThenReadAsync(relay.Listen, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray()));

        var line = relay.Log.WaitForJson(j => AdmissionTests.Event(j) == "ProxyHeaderRejected");
        Assert.Equal("test", line.GetProperty("Route").GetString());
        Assert.StartsWith("127.0.0.1:", line.GetProperty("Peer").GetString());
        Assert.Contains("signature", line.GetProperty("Problem").GetString());
        Assert.Equal(0, server.Accepted);
        Assert.Equal(1, AdmissionTests.Refused(relay.Node.Metrics.ForRoute("test"), RefusalReasons.ProxyHeader));
    }

    [Fact]
    public async Task A_client_dribbling_its_header_is_cut_at_the_header_timeout_though_it_keeps_sending()
    {
        await using var server = new TestServer(TestServer.Echo);
        var timeout = TimeSpan.FromMilliseconds(600);
        await using var relay = await RelayHarness.StartAsync(TestSettings.Relay(Route(server.Endpoint, accept: true, headerTimeout: timeout)));
        var header = Encoding.ASCII.GetBytes("PROXY TCP4 198.18.0.7 198.19.1.2 56324 443\r\n");

        var clock = Stopwatch.StartNew(); // before the connect: the relay's deadline starts at its accept
        using var client = await SocketIo.ConnectAsync(relay.Listen());
        var outcome = "sent all";
        try
        {
            // One byte every 50 ms would take over 2 s; each byte is progress, yet the deadline holds.
            foreach (var b in header)
            {
                await client.SendAsync(new[] { b }, SocketFlags.None);
                await Task.Delay(50);
            }
        }
        catch (SocketException)
        {
            outcome = "reset";
        }

        if (outcome != "reset")
        {
            outcome = await SocketIo.ReadUntilClosedAsync(client, Wait);
        }

        Assert.Equal("reset", outcome);
        Assert.InRange(clock.Elapsed, timeout - TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(2.2));
        Assert.Equal(0, server.Accepted);
        await Eventually.Holds(() => NodeAdmission.For(relay.System).Active == 0, "the pending connection's admission to be released");
    }

    [Fact]
    public async Task Random_garbage_never_crashes_the_relay_or_leaks_a_circuit_and_a_good_client_still_gets_through()
    {
        await using var server = new TestServer(async socket =>
        {
            await ReadHeaderAsync(socket);
            await TestServer.Echo(socket);
        });
        var route = Route(server.Endpoint, ProxyProtocolVersion.V2, accept: true, headerTimeout: TimeSpan.FromMilliseconds(500));
        await using var relay = await RelayHarness.StartAsync(TestSettings.Relay(route));
        var random = new Random(666);
        var valid = ProxyHeaderWriter.Build(ProxyProtocolVersion.V2, new IPEndPoint(IPAddress.Parse("198.18.0.7"), 5),
            new IPEndPoint(IPAddress.Parse("198.19.1.2"), 443));
        var clock = Stopwatch.StartNew();
        var attempts = 0;

        // Bounded in count and in time: 400 connections or 30 s, whichever comes first.
        for (; attempts < 400 && clock.Elapsed < TimeSpan.FromSeconds(30); attempts++)
        {
            var garbage = Garbage(random, valid);
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(relay.Listen());
                await socket.SendAsync(garbage, SocketFlags.None);
                switch (attempts % 3)
                {
                    case 0:
                        SocketIo.Abort(socket); // vanish with a reset
                        break;
                    case 1:
                        socket.Shutdown(SocketShutdown.Send); // a FIN mid-header
                        break;
                }
            }
            catch (SocketException)
            {
                // Already reset by the relay: fine.
            }
        }

        await AssertGoodClientGetsThroughAsync(relay.Listen(), valid);

        var relayPort = relay.Listen().Port;
        await Eventually.Holds(() => relay.Circuits.Count == 0, "no circuit left", TimeSpan.FromSeconds(15));
        await Eventually.Holds(() => NodeAdmission.For(relay.System).Active == 0, "every admission released", TimeSpan.FromSeconds(15));
        await Eventually.Holds(
            () => !TcpStates.ForPorts(relayPort).Any(s => s.LocalPort == relayPort && TcpStates.Lingering.Contains(s.State)),
            "no relay-side socket left half-closed", TimeSpan.FromSeconds(15));
        Assert.True(attempts >= 100, $"only {attempts} attempts ran");
        // Every connection was either refused for its header or became a circuit (a mutated
        // header can still be valid), and only circuits ever reached the upstream.
        var metrics = relay.Metrics.ForRoute("test");
        var rejected = AdmissionTests.Refused(metrics, RefusalReasons.ProxyHeader);
        // Connections reset before accept4 returned are accepted but neither refused nor circuits.
        Assert.InRange(metrics.Accepted - (rejected + metrics.Total), 0, (attempts / 3) + 1);
        Assert.True(rejected > attempts / 2, $"only {rejected} of {attempts} rejected");
        Assert.Equal(metrics.Total, server.Accepted);
    }

    private static byte[] Garbage(Random random, byte[] valid)
    {
        var length = random.Next(0, 300);
        var bytes = new byte[length];
        random.NextBytes(bytes);
        switch (random.Next(5))
        {
            case 0 when length >= 6:
                "PROXY "u8.CopyTo(bytes);
                break;
            case 1 when length >= 12:
                valid.AsSpan(0, 12).CopyTo(bytes);
                break;
            case 2:
                // A valid header with one byte flipped, or cut short.
                bytes = valid.ToArray();
                bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
                break;
            case 3:
                bytes = valid[..random.Next(valid.Length)];
                break;
        }

        return bytes;
    }

    private static async Task AssertGoodClientGetsThroughAsync(IPEndPoint relay, byte[] header)
    {
        using var client = await SocketIo.ConnectAsync(relay);
        await client.SendAsync(Join(header, "alive"u8.ToArray()), SocketFlags.None);
        Assert.Equal("alive"u8.ToArray(), await SocketIo.ReadExactlyAsync(client, 5).WaitAsync(Wait));
        client.Shutdown(SocketShutdown.Send);
        await SocketIo.ReadToEndAsync(client).WaitAsync(Wait);
    }

    private static byte[] Join(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    private static async Task<string> SendHeaderThenReadAsync(IPEndPoint endpoint, byte[] header)
    {
        try
        {
            using var socket = await SocketIo.ConnectAsync(endpoint);
            await socket.SendAsync(header, SocketFlags.None);
            return await SocketIo.ReadUntilClosedAsync(socket, Wait);
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset)
        {
            return "reset";
        }
    }

    /// <summary>Reads one PROXY header off <paramref name="socket"/> a byte at a time, as a server would.</summary>
    private static async Task<ProxyHeader> ReadHeaderAsync(Socket socket)
    {
        var buffer = new List<byte>();
        var one = new byte[1];
        while (true)
        {
            if (await socket.ReceiveAsync(one, SocketFlags.None) == 0)
            {
                throw new EndOfStreamException($"EOF inside the header after {buffer.Count} bytes");
            }

            buffer.Add(one[0]);
            var result = ProxyHeaderParser.Parse(buffer.ToArray());
            if (result.Status == ProxyParseStatus.Complete)
            {
                return result.Header!;
            }

            Assert.Equal(ProxyParseStatus.Incomplete, result.Status);
        }
    }
}
