using System.Net;
using System.Net.Sockets;
using Relay.Actors;
using Relay.Tests.Support;

namespace Relay.Tests.Listening;

public sealed class ListenerTests
{
    [Fact]
    public async Task A_port_in_use_fails_the_start_with_one_line_naming_route_and_address()
    {
        using var occupant = Endpoints.Occupy();
        var taken = (IPEndPoint)occupant.LocalEndPoint!;
        var route = TestSettings.Route(new IPEndPoint(IPAddress.Loopback, 9)) with { Name = "web", Listen = taken };

        var failure = await Assert.ThrowsAsync<RelayStartException>(() => RelayHarness.StartAsync(TestSettings.Relay(route)));

        Assert.Equal($"route web: cannot listen on {taken}: address already in use", failure.Message);
    }

    [Fact]
    public async Task A_second_relay_cannot_share_a_listening_port_with_the_first()
    {
        // Regression: .NET's ReuseAddress sets SO_REUSEPORT on Linux, which let two relays
        // bind one port and split its connections between them without a word.
        await using var server = new TestServer(TestServer.Echo);
        await using var first = await RelayHarness.StartAsync(server.Endpoint);
        var route = TestSettings.Route(server.Endpoint) with { Listen = first.Listen() };

        await Assert.ThrowsAsync<RelayStartException>(() => RelayHarness.StartAsync(TestSettings.Relay(route)));
    }

    [Fact]
    public async Task A_relay_restarted_at_once_binds_its_port_despite_connections_in_time_wait()
    {
        await using var server = new TestServer(TestServer.Echo);
        IPEndPoint listen;
        await using (var first = await RelayHarness.StartAsync(server.Endpoint))
        {
            listen = first.Listen();
            using var client = await SocketIo.ConnectAsync(listen);
            await client.SendAsync(new byte[] { 1 }, SocketFlags.None);
            client.Shutdown(SocketShutdown.Send);
            await SocketIo.ReadToEndAsync(client);
        }

        var route = TestSettings.Route(server.Endpoint) with { Listen = listen };
        await using var second = await RelayHarness.StartAsync(TestSettings.Relay(route));

        Assert.Equal(listen, second.EndpointOf("test"));
    }
}
