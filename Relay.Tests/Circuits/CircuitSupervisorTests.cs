using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Configuration;
using Relay.Actors.Circuits;
using Relay.Actors.Configuration;
using Relay.Actors.Dispatch;
using Relay.Tests.Support;

namespace Relay.Tests.Circuits;

/// <summary>
/// The supervisor's state machine driven message by message, with TestKit watching it:
/// connecting → established → half-closed → closed, and resets from any state.
/// </summary>
public sealed class CircuitSupervisorTests : Akka.TestKit.Xunit2.TestKit
{
    private static readonly Config SystemConfig = ConfigurationFactory.ParseString("akka.loglevel = INFO")
        .WithFallback(CoreDispatchers.CreateConfig(new DispatcherSettings(1, false, 64)));

    private readonly CircuitRegistry _registry = new();

    public CircuitSupervisorTests()
        : base(SystemConfig, "circuit-supervisor-tests")
    {
    }

    [Fact]
    public async Task Moves_from_connecting_to_established_to_half_closed_to_closed()
    {
        await using var upstream = new TestServer(socket => Task.Delay(TimeSpan.FromSeconds(30)));
        var (entry, supervisor, client) = await StartCircuitAsync(upstream.Endpoint);
        using (client)
        {
            AwaitCondition(() => entry.State == CircuitState.Established, TimeSpan.FromSeconds(5));
            Assert.Equal(1, _registry.Count);

            supervisor.Tell(PumpProtocol.DirectionFinished.Up);
            AwaitCondition(() => entry.State == CircuitState.HalfClosed, TimeSpan.FromSeconds(5));

            EventFilter.Info(contains: "complete").ExpectOne(() =>
                supervisor.Tell(PumpProtocol.DirectionFinished.Down));
            ExpectTerminated(supervisor);
            Assert.Equal(CircuitState.Closed, entry.State);
            Assert.Equal(0, _registry.Count);
        }
    }

    [Fact]
    public async Task A_side_failure_resets_both_connections_and_logs_its_reason()
    {
        var upstreamSaw = new TaskCompletionSource<string>();
        await using var upstream = new TestServer(async socket =>
            upstreamSaw.SetResult(await SocketIo.ReadUntilClosedAsync(socket, TimeSpan.FromSeconds(10))));
        var (entry, supervisor, client) = await StartCircuitAsync(upstream.Endpoint);
        using (client)
        {
            AwaitCondition(() => entry.State == CircuitState.Established, TimeSpan.FromSeconds(5));

            EventFilter.Info(contains: "client-reset").ExpectOne(() =>
                supervisor.Tell(new PumpProtocol.SideFailed(CircuitSide.Client, SocketError.ConnectionReset)));

            ExpectTerminated(supervisor);
            Assert.Equal("reset", await upstreamSaw.Task.WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.Equal("reset", await SocketIo.ReadUntilClosedAsync(client, TimeSpan.FromSeconds(10)));
        }
    }

    [Fact]
    public async Task Abort_resets_a_circuit_that_is_still_connecting()
    {
        // An upstream that never completes the handshake keeps the circuit connecting.
        using var blackhole = await Endpoints.UnansweringAsync();
        var (entry, supervisor, client) = await StartCircuitAsync(blackhole.Endpoint);
        using (client)
        {
            Assert.Equal(CircuitState.Connecting, entry.State);
            EventFilter.Info(contains: CloseReasons.Aborted).ExpectOne(() =>
                supervisor.Tell(new CircuitCommands.Abort(CloseReasons.Aborted, entry.Id)));
            ExpectTerminated(supervisor);
            Assert.Equal("reset", await SocketIo.ReadUntilClosedAsync(client, TimeSpan.FromSeconds(5)));
        }
    }

    [Fact]
    public async Task Stopping_the_supervisor_resets_its_sockets_and_reports_the_close()
    {
        await using var upstream = new TestServer(socket => Task.Delay(TimeSpan.FromSeconds(30)));
        CircuitEntry? closed = null;
        var (entry, supervisor, client) = await StartCircuitAsync(upstream.Endpoint, e => closed = e);
        using (client)
        {
            AwaitCondition(() => entry.State == CircuitState.Established, TimeSpan.FromSeconds(5));

            Sys.Stop(supervisor);

            ExpectTerminated(supervisor);
            Assert.Same(entry, closed);
            Assert.Equal("reset", await SocketIo.ReadUntilClosedAsync(client, TimeSpan.FromSeconds(5)));
        }
    }

    [Fact]
    public async Task An_impossible_move_resets_the_circuit_and_its_parent_stops_it()
    {
        await using var upstream = new TestServer(socket => Task.Delay(TimeSpan.FromSeconds(30)));
        // Supervised as the acceptor supervises its circuits: one that throws is stopped.
        var failure = new TaskCompletionSource<Exception>();
        var (entry, supervisor, client) = await StartCircuitAsync(upstream.Endpoint,
            spawn: props => ChildActorOf(props, new OneForOneStrategy(e =>
            {
                failure.TrySetResult(e);
                return Directive.Stop;
            })));
        using (client)
        {
            AwaitCondition(() => entry.State == CircuitState.Established, TimeSpan.FromSeconds(5));
            supervisor.Tell(PumpProtocol.DirectionFinished.Up);
            AwaitCondition(() => entry.State == CircuitState.HalfClosed, TimeSpan.FromSeconds(5));

            // A direction ends once: a second end of the same one is a bug, not a close.
            EventFilter.Info(contains: CloseReasons.InternalError).ExpectOne(() =>
                supervisor.Tell(PumpProtocol.DirectionFinished.Up));

            ExpectTerminated(supervisor);
            var thrown = await failure.Task.WaitAsync(TimeSpan.FromSeconds(5));
            Assert.IsType<InvalidOperationException>(thrown);
            Assert.Contains("finished twice", thrown.Message);
            Assert.Equal(CircuitState.Closed, entry.State);
            Assert.Equal(0, _registry.Count);
            Assert.Equal("reset", await SocketIo.ReadUntilClosedAsync(client, TimeSpan.FromSeconds(5)));
        }
    }

    /// <summary>A real accepted socket handed to a supervisor made by the test, as the listener would.</summary>
    /// <param name="spawn">Starts the supervisor from its props; by default as a top-level actor.</param>
    private async Task<(CircuitEntry Entry, IActorRef Supervisor, Socket Client)> StartCircuitAsync(
        IPEndPoint upstream, Action<CircuitEntry>? onClosed = null, Func<Props, IActorRef>? spawn = null)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var connecting = client.ConnectAsync(listener.LocalEndPoint!);
        var accepted = await listener.AcceptAsync();
        await connecting;

        // These circuits move no byte, so they are null circuits: logged like any other here,
        // so the tests can see each end at Information.
        var route = TestSettings.Route(upstream, TestSettings.Circuit() with { NullCircuits = NullCircuits.Log });
        var entry = new CircuitEntry(_registry.NextId(), route.Name, "test-node", accepted.RemoteEndPoint!, route.Upstreams.ToString(), 0, ActorRefs.Nobody);
        var props = CircuitSupervisor.Props(entry, accepted, route, _registry, onClosed).WithDispatcher(CoreDispatchers.IdFor(0));
        var supervisor = spawn is null ? Sys.ActorOf(props) : spawn(props);
        Watch(supervisor);
        return (entry, supervisor, client);
    }
}
