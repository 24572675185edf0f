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

public sealed class AcceptResetTests
{
    [Fact]
    public async Task Clients_that_reset_right_after_connecting_cause_no_actor_error_and_no_leak()
    {
        await using var server = new TestServer(TestServer.Echo);
        await using var relay = await RelayHarness.StartAsync(server.Endpoint);
        var errors = new List<string>();
        var collector = relay.System.ActorOf(Akka.Actor.Props.Create(() => new ErrorCollector(errors)));
        relay.System.EventStream.Subscribe(collector, typeof(Akka.Event.Error));

        // Regression: getpeername on a connection reset before accept returned null, and the
        // circuit's constructor threw on it (and leaked the accepted descriptor). Both core
        // threads are held busy so the resets land while the connections wait to be accepted.
        var blockers = Enumerable.Range(0, relay.Cores.Cores).Select(core =>
            relay.System.ActorOf(Akka.Actor.Props.Create(() => new Blocker()).WithDispatcher(Relay.Actors.Dispatch.CoreDispatchers.IdFor(core)))).ToList();
        var held = blockers.Select(b =>
        {
            var hold = new Hold(TimeSpan.FromMilliseconds(800));
            b.Tell(hold, Akka.Actor.ActorRefs.NoSender);
            return hold.Started.Task;
        }).ToList();
        await Task.WhenAll(held);
        for (var i = 0; i < 20; i++)
        {
            var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await client.ConnectAsync(relay.Listen());
            await client.SendAsync(new byte[] { 1 }, SocketFlags.None);
            SocketIo.Abort(client);
        }

        using (var client = await SocketIo.ConnectAsync(relay.Listen()))
        {
            await client.SendAsync(new byte[] { 42 }, SocketFlags.None);
            client.Shutdown(SocketShutdown.Send);
            Assert.Equal(1, (await SocketIo.ReadToEndAsync(client)).Bytes);
        }

        await Eventually.Holds(() => relay.Circuits.Count == 0, "every circuit to end");
        lock (errors)
        {
            Assert.Empty(errors);
        }
    }

    /// <summary>Holds its core thread for the time it is sent, standing in for a busy core.</summary>
    private sealed class Blocker : Akka.Actor.ReceiveActor
    {
        public Blocker() => Receive<Hold>(hold =>
        {
            hold.Started.SetResult();
            Thread.Sleep(hold.Busy); // the point: the core thread is busy, not waiting on anything
        });
    }

    /// <summary>Tells a <see cref="Blocker"/> how long to hold its core; <see cref="Started"/> completes as it begins.</summary>
    private sealed record Hold(TimeSpan Busy)
    {
        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed class ErrorCollector : Akka.Actor.ReceiveActor
    {
        public ErrorCollector(List<string> errors) => ReceiveAny(m =>
        {
            lock (errors)
            {
                errors.Add(m.ToString() ?? "?");
            }
        });
    }
}
