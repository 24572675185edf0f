using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors;
using Relay.Actors.Circuits;
using Relay.Actors.Configuration;
using Relay.Actors.Listening;
using Relay.Actors.Listening.Admission;
using Relay.Actors.Metrics;
using Relay.Actors.Sockets;
using Relay.Actors.Transparent;
using Relay.Actors.Tuning;
using Relay.Actors.Upstreams;
using Relay.Tests.Native;
using Relay.Tests.Support;
using static Relay.Tests.Cluster.Neighbours;

namespace Relay.Tests.Cluster;

/// <summary>
/// The upstream socket's bind to the egress VIP, on the real kernel (root): two network
/// namespaces of this test (a unique prefix, removed in finally) joined by a veth, the relay
/// side <c>r</c> (198.18.7.2, 2001:2:7::2, and the egress VIP 198.18.7.10 when a test adds it)
/// and the server side <c>s</c> (198.18.7.100, 2001:2:7::100). Sockets are made the way a
/// circuit makes them (<see cref="CircuitSockets.CreateForConnect"/>,
/// <see cref="NonBlockingConnect"/>) inside r; the listeners inside s say which address each
/// connection came from.
/// </summary>
public sealed class EgressSourceLabTests
{
    private static readonly IPAddress Egress = IPAddress.Parse("198.18.7.10");
    private static readonly IPAddress Node = IPAddress.Parse("198.18.7.2");
    private static readonly IPAddress Server = IPAddress.Parse("198.18.7.100");
    private static readonly IPAddress Server6 = IPAddress.Parse("2001:2:7::100");

    [RootLabFact]
    public async Task A_forward_upstream_socket_is_bound_to_the_egress_vip_with_the_port_left_to_connect_and_the_server_sees_the_vip()
    {
        var lab = NewPrefix();
        try
        {
            await UpAsync(lab, withEgress: true);
            using var listener = Listen(lab, new IPEndPoint(Server, 9001));
            var destination = (IPEndPoint)listener.LocalEndPoint!;
            using var upstream = NetworkNamespace.Run(lab + "r", () => CircuitSockets.CreateForConnect(destination));

            Assert.True(EgressSource.Bind(upstream, Egress, destination));
            // IP_BIND_ADDRESS_NO_PORT: the address is set, the port waits for connect.
            Assert.Equal(new IPEndPoint(Egress, 0), LocalNow(upstream));

            using var accepted = await ConnectAsync(upstream, destination, listener);
            Assert.Equal(Egress, ((IPEndPoint)accepted.RemoteEndPoint!).Address);
            Assert.Equal(accepted.RemoteEndPoint, LocalNow(upstream));
        }
        finally
        {
            await DownAsync(lab);
        }
    }

    [RootLabFact]
    public async Task An_upstream_of_the_other_address_family_connects_unbound_from_the_nodes_own_address()
    {
        var lab = NewPrefix();
        try
        {
            await UpAsync(lab, withEgress: true);
            using var listener = Listen(lab, new IPEndPoint(Server6, 9001));
            var destination = (IPEndPoint)listener.LocalEndPoint!;
            using var upstream = NetworkNamespace.Run(lab + "r", () => CircuitSockets.CreateForConnect(destination));

            Assert.False(EgressSource.Bind(upstream, Egress, destination));

            using var accepted = await ConnectAsync(upstream, destination, listener);
            Assert.Equal(IPAddress.Parse("2001:2:7::2"), ((IPEndPoint)accepted.RemoteEndPoint!).Address);
        }
        finally
        {
            await DownAsync(lab);
        }
    }

    /// <summary>
    /// Two ephemeral ports in all (ip_local_port_range 40000-40001 in r), two servers: three
    /// connections from the one egress VIP, since the port is picked per 4-tuple at connect. A
    /// port picked at bind would be unique per address: the third bind would find none.
    /// </summary>
    [RootLabFact]
    public async Task One_egress_vip_carries_more_connections_than_ephemeral_ports_since_the_port_is_picked_per_destination()
    {
        var lab = NewPrefix();
        try
        {
            await UpAsync(lab, withEgress: true);
            await RunAsync("ip", "netns", "exec", lab + "r", "sysctl", "-qw", "net.ipv4.ip_local_port_range=40000 40001");
            using var first = Listen(lab, new IPEndPoint(Server, 9001));
            using var second = Listen(lab, new IPEndPoint(Server, 9002));
            var accepted = new List<Socket>();
            var upstreams = new List<Socket>();
            try
            {
                foreach (var listener in new[] { first, second, first })
                {
                    var destination = (IPEndPoint)listener.LocalEndPoint!;
                    var upstream = NetworkNamespace.Run(lab + "r", () => CircuitSockets.CreateForConnect(destination));
                    upstreams.Add(upstream);
                    Assert.True(EgressSource.Bind(upstream, Egress, destination));
                    accepted.Add(await ConnectAsync(upstream, destination, listener));
                }

                Assert.All(accepted, a => Assert.Equal(Egress, ((IPEndPoint)a.RemoteEndPoint!).Address));
                Assert.All(upstreams, u => Assert.InRange(((IPEndPoint)LocalNow(u)!).Port, 40000, 40001));
            }
            finally
            {
                accepted.Concat(upstreams).ToList().ForEach(s => s.Dispose());
            }
        }
        finally
        {
            await DownAsync(lab);
        }
    }

    [RootLabFact]
    public async Task A_connect_from_an_egress_vip_this_node_no_longer_holds_fails_as_a_connect_error_not_at_bind()
    {
        var lab = NewPrefix();
        try
        {
            await UpAsync(lab, withEgress: false);
            var destination = new IPEndPoint(Server, 9001);
            using var upstream = NetworkNamespace.Run(lab + "r", () => CircuitSockets.CreateForConnect(destination));

            // IP_FREEBIND: the bind does not care that the address is gone.
            Assert.True(EgressSource.Bind(upstream, Egress, destination));
            // IPv4 refuses to route from an address that is not local: the circuit's connect
            // error, handled as any other (the next pool member, or a reset with its reason).
            Assert.Equal(SocketError.NetworkUnreachable, NonBlockingConnect.Start(upstream, destination));
        }
        finally
        {
            await DownAsync(lab);
        }
    }

    [RootLabFact]
    public async Task A_refused_bind_is_one_line_that_names_the_egress_vip_and_the_error()
    {
        var lab = NewPrefix();
        try
        {
            await UpAsync(lab, withEgress: true);
            var destination = new IPEndPoint(Server, 9001);
            using var upstream = NetworkNamespace.Run(lab + "r", () => CircuitSockets.CreateForConnect(destination));
            upstream.Bind(new IPEndPoint(Node, 0)); // a socket binds once: the kernel answers EINVAL

            var e = Assert.Throws<SocketTuningException>(() => EgressSource.Bind(upstream, Egress, destination));
            Assert.Equal("cannot bind the upstream socket to the egress VIP 198.18.7.10: bind: Invalid argument", e.Message);
            Assert.Equal("egress-vip", e.Option);
        }
        finally
        {
            await DownAsync(lab);
        }
    }

    /// <summary>
    /// What a circuit calls: a forward route is bound to the node's egress address (from its
    /// <see cref="RelayNodeContext"/>); a transparent route keeps its own source; a system
    /// without a relay node (or a node without an egress VIP) binds nothing.
    /// </summary>
    [RootLabFact]
    public async Task Only_forward_routes_of_a_node_with_an_egress_vip_are_bound_to_it()
    {
        var lab = NewPrefix();
        var destination = new IPEndPoint(Server, 9001);
        var forward = TestSettings.Route(destination);
        var transparent = forward with
        {
            Transparent = new TransparentSettings(Interception.Redirect, UpstreamSource.Relay, DestinationPolicy.AllowAll),
        };
        using var bare = ActorSystem.Create("egress-bare");
        using var withEgress = NodeSystem("egress-node", Egress);
        using var withoutEgress = NodeSystem("egress-none", null);
        try
        {
            await UpAsync(lab, withEgress: true);
            IPEndPoint? BoundTo(RouteSettings route, ActorSystem system) => NetworkNamespace.Run(lab + "r", () =>
            {
                using var upstream = CircuitSockets.CreateForConnect(destination);
                EgressSource.BindForward(upstream, destination, route, system);
                return (IPEndPoint?)LocalNow(upstream);
            });

            Assert.Equal(new IPEndPoint(Egress, 0), BoundTo(forward, withEgress));
            Assert.Equal(new IPEndPoint(IPAddress.Any, 0), BoundTo(transparent, withEgress));
            Assert.Equal(new IPEndPoint(IPAddress.Any, 0), BoundTo(forward, withoutEgress));
            Assert.Equal(new IPEndPoint(IPAddress.Any, 0), BoundTo(forward, bare));
        }
        finally
        {
            await DownAsync(lab);
        }
    }

    private static ActorSystem NodeSystem(string name, IPAddress? egress)
    {
        var system = ActorSystem.Create(name);
        RelayNodeContext.Install(system, new RelayNodeContext(name, new CircuitRegistry(), new CoreBalancer(1), new RelayMetrics([]),
            new UpstreamPools(), NodeAdmission.For(system))
        {
            EgressAddress = egress,
        });
        return system;
    }

    /// <summary>
    /// The socket's local address now (getsockname): <see cref="Socket.LocalEndPoint"/> keeps the
    /// first answer, and a circuit's socket binds and connects with raw system calls.
    /// </summary>
    private static EndPoint? LocalNow(Socket socket)
    {
        using var view = new Socket(new SafeSocketHandle(socket.Handle, ownsHandle: false));
        return view.LocalEndPoint;
    }

    /// <summary>A listener inside s.</summary>
    private static Socket Listen(string lab, IPEndPoint endpoint) => NetworkNamespace.Run(lab + "s", () =>
    {
        var listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(endpoint);
        listener.Listen(8);
        return listener;
    });

    /// <summary>Connects <paramref name="upstream"/> as a circuit does, and the server's side of it.</summary>
    private static async Task<Socket> ConnectAsync(Socket upstream, IPEndPoint destination, Socket listener)
    {
        var started = NonBlockingConnect.Start(upstream, destination);
        Assert.True(started is SocketError.WouldBlock or SocketError.Success, $"connect to {destination}: {started}");
        var accepted = await listener.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(upstream.Poll(TimeSpan.FromSeconds(5), SelectMode.SelectWrite), "the connect did not complete");
        Assert.Equal(SocketError.Success, NonBlockingConnect.Finish(upstream));
        return accepted;
    }

    private static string NewPrefix() => $"reb{Environment.ProcessId % 100000}x{Random.Shared.Next(1000, 9999)}-";

    /// <summary>r (198.18.7.2, 2001:2:7::2, and the egress VIP 198.18.7.10 if asked) and s (198.18.7.100, 2001:2:7::100) on a veth.</summary>
    private static async Task UpAsync(string lab, bool withEgress)
    {
        foreach (var ns in new[] { "r", "s" })
        {
            await RunAsync("ip", "netns", "add", lab + ns);
            await RunAsync("ip", "-n", lab + ns, "link", "set", "lo", "up");
        }

        await RunAsync("ip", "-n", lab + "r", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", lab + "s");
        foreach (var (ns, host) in new[] { ("r", 2), ("s", 100) })
        {
            await RunAsync("ip", "-n", lab + ns, "addr", "add", $"198.18.7.{host}/24", "dev", "eth0");
            await RunAsync("ip", "-n", lab + ns, "addr", "add", $"2001:2:7::{host}/64", "dev", "eth0", "nodad");
            await RunAsync("ip", "-n", lab + ns, "link", "set", "eth0", "up");
        }

        if (withEgress)
        {
            await RunAsync("ip", "-n", lab + "r", "addr", "add", "198.18.7.10/24", "dev", "eth0");
        }
    }

    private static async Task DownAsync(string lab)
    {
        foreach (var ns in new[] { "r", "s" })
        {
            await ExternalProcess.RunAsync("ip", ["netns", "del", lab + ns], null, TimeSpan.FromSeconds(30));
        }
    }

    private static async Task RunAsync(string file, params string[] args)
    {
        var run = await ExternalProcess.RunAsync(file, args, null, TimeSpan.FromSeconds(30));
        Assert.True(run.Exit == 0, $"{file} {string.Join(' ', args)} failed ({run.Exit}): {run.Output}");
    }
}
