using Akka.Actor;
using Akka.Cluster;
using Relay.Actors;
using Relay.Actors.Cluster;
using Relay.Tests.Support;
using Xunit.Abstractions;

namespace Relay.Tests.Cluster;

/// <summary>
/// The two ends of a live handover are not downed while it runs (<see cref="DowningHolds"/>):
/// two real nodes over Akka.Remote on loopback, their remoting cut by an nft rule on their two
/// ports, as a pair of hosts too busy to answer heartbeats would be; neither downs the other
/// while held, and the held node's peer is downed as soon as its hold ends.
/// </summary>
public sealed class DowningHoldLabTests(ITestOutputHelper output)
{
    [RootLabFact]
    public async Task A_member_held_by_a_handover_is_not_downed_while_unreachable_and_is_downed_once_the_hold_ends()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var cluster = new ClusterHarness();
        var settings = ClusterHarness.Settings(upstream.Endpoint);
        var first = await cluster.AddAsync(settings);
        var second = await cluster.AddAsync(settings);
        var a1 = first.Cluster!.Cluster.SelfAddress;
        var a2 = second.Cluster!.Cluster.SelfAddress;

        // As a handover's source does: its own hold, and a notice to the other member's
        // /user/downing-holds over Akka.Remote.
        var held = DowningHolds.Get(first.System).Add("test-handover", [a1, a2], "a test handover is under way", TimeSpan.FromMinutes(1));
        first.System.ActorSelection(new RootActorPath(a2) / "user" / DowningHoldsActor.Name)
            .Tell(new DowningHoldsActor.HoldDowning("test-handover", [a1.ToString(), a2.ToString()], "a test handover is under way", 60_000));
        await ClusterHarness.Until(() => DowningHolds.Get(second.System).WhyHeld(a1) is not null, "the notice to reach the second node");

        var table = $"relay_hold_test_{Environment.ProcessId}";
        var ports = $"{a1.Port}, {a2.Port}";
        await Nft($"add table inet {table}\n"
                  + $"add chain inet {table} in {{ type filter hook input priority -10; }}\n"
                  + $"add rule inet {table} in tcp dport {{ {ports} }} drop\n"
                  + $"add rule inet {table} in tcp sport {{ {ports} }} drop\n");
        try
        {
            // Unreachable, or (were the hold not kept) downed already.
            await ClusterHarness.Until(() => Unreachable(first, a2) && Unreachable(second, a1), "each node to see the other unreachable");

            // Past stable-after (200 ms) many times over: without the hold each would have downed the other.
            await Task.Delay(TimeSpan.FromSeconds(3));
            Assert.Equal(MemberStatus.Up, StatusOn(first, a2));
            Assert.Equal(MemberStatus.Up, StatusOn(second, a1));

            // The handover ends on the first node: it downs its unreachable peer now.
            held.Dispose();
            await ClusterHarness.Until(() => StatusOn(first, a2) is null or MemberStatus.Down, "the first node to down the second once its hold ended");
            Assert.Equal(MemberStatus.Up, StatusOn(second, a1));
        }
        finally
        {
            await Nft($"delete table inet {table}\n");
        }
    }

    [Fact]
    public void A_hold_ends_when_disposed_or_when_its_bound_passes()
    {
        var holds = new DowningHolds();
        var a = new Address("akka.tcp", "relay", "198.18.0.2", 2552);
        var b = new Address("akka.tcp", "relay", "198.18.0.3", 2552);
        var c = new Address("akka.tcp", "relay", "198.18.0.4", 2552);

        var lease = holds.Add("h1", [a, b], "handover h1", TimeSpan.FromMinutes(1));
        Assert.Equal("handover h1", holds.WhyHeld(a));
        Assert.Equal("handover h1", holds.WhyHeld(b));
        Assert.Null(holds.WhyHeld(c));
        lease.Dispose();
        Assert.Null(holds.WhyHeld(a));

        holds.Add("h2", [c], "handover h2", TimeSpan.FromMilliseconds(1));
        Thread.Sleep(20);
        Assert.Null(holds.WhyHeld(c));
    }

    private static bool Unreachable(RelayNode node, Address member) =>
        node.Cluster!.Cluster.State.Unreachable.Any(m => m.Address.Equals(member)) || StatusOn(node, member) != MemberStatus.Up;

    private static MemberStatus? StatusOn(RelayNode node, Address member) =>
        node.Cluster!.Cluster.State.Members.FirstOrDefault(m => m.Address.Equals(member))?.Status;

    private async Task Nft(string script)
    {
        var path = Path.GetTempFileName();
        await File.WriteAllTextAsync(path, script);
        try
        {
            var result = await ExternalProcess.RunAsync("nft", ["-f", path], null, TimeSpan.FromSeconds(10));
            output.WriteLine($"nft -f:\n{script}{result.Output}");
            Assert.True(result.Exit == 0, $"nft failed: {result.Output}");
        }
        finally
        {
            File.Delete(path);
        }
    }
}
