using Relay.Tests.Support;
using Xunit.Abstractions;
using static Relay.Tests.Cluster.ClusterLab;

namespace Relay.Tests.Handover;

/// <summary>
/// Handovers that are not done, with real relay processes (root, <see cref="HandoverLab"/>):
/// the target killed mid-handover, and a target that is not a member. Circuits stream a
/// pattern both ways through the VIP throughout; every one must go on on the owner with every
/// byte exactly once, and no reset may reach the client or the server.
/// </summary>
public sealed class RollbackLabTests(ITestOutputHelper output)
{
    private const int Circuits = 8;

    /// <summary>
    /// The target is killed at a point read from outside, not raced: an nft rule in its
    /// namespace drops (and counts) what it sends on the state channel with PSH set and more
    /// than 48 bytes of payload, which its Restored answer (the ids of 8 circuits) is, and its
    /// one-byte answer to the channel's token and its pure ACKs are not. Once the counter moves, the target has taken the addresses, bound the routes and
    /// restored every circuit, and the source holds them frozen waiting for the answer: then
    /// SIGKILL. The source's <c>relay.cluster.handover.timeout</c> expires and it rolls back.
    /// The guard timeout is short here (8 s), so the test also sees what the dead target's
    /// kernel does with the restored sockets once its guard elements expire, and node 2 is
    /// then started again, as systemd would. The addresses it had taken expire by themselves first.
    /// </summary>
    [RootLabFact]
    public async Task The_target_killed_after_it_restored_the_circuits_leaves_every_circuit_running_on_the_owner()
    {
        await using var lab = await HandoverLab.UpAsync("rhops-rb", output);
        var extra = (await lab.StartPairAsync("relay.cluster.handover { timeout = 5s, guard-timeout = 8s }\n"))!;

        var circuits = await lab.OpenCircuitsAsync(Circuits);
        // Circuits 0 and 1 stay idle until the end: their sequence numbers are still those the
        // dead target restored, so a segment its kernel sends for them later would be in window.
        using var traffic = new LabTraffic(circuits, rate: 64 * 1024, idle: new HashSet<int> { 0, 1 });
        try
        {
            await Eventually.Holds(() => traffic.Received > Circuits * 64 * 1024, "bytes flowing through n1", TimeSpan.FromSeconds(30));
            var hold = $"{lab.Prefix}n2";
            // Akka's own traffic (port 2552 on either side) passes; two accepts, not
            // "tcp sport != 2552 tcp dport != 2552": nft 1.0.6 merges those into one compare of
            // both ports together, which is true when either differs.
            await RunAsync("sh", ["-c",
                "printf 'table inet rhops_hold {\\n chain out {\\n type filter hook output priority 0;\\n" +
                " tcp sport 2552 accept\\n tcp dport 2552 accept\\n" +
                " ip daddr 198.18.0.2 ip length > 100 tcp flags & psh == psh counter drop\\n }\\n }\\n'" +
                $" | ip netns exec {hold} nft -f -"], null);

            var handover = lab.HandOverAsync(1);
            await Eventually.Holds(async () => await HeldAnswersAsync(hold) > 0, "the target's Restored answer held back",
                TimeSpan.FromSeconds(30), every: TimeSpan.FromMilliseconds(20));
            await lab.ClusterAsync("kill", "2", "KILL");
            var addressesLeft = await lab.AddressesAsync(2);
            output.WriteLine($"n2 killed after it restored the circuits; its addresses:\n{addressesLeft}");
            output.WriteLine($"n2's nft tables:\n{await RunAsync("ip", ["netns", "exec", hold, "nft", "list", "tables"], null)}");

            var (exit, outcome) = await handover.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(3, exit);
            Assert.Equal("rolled-back", outcome.GetProperty("result").GetString());
            Assert.Equal(0, outcome.GetProperty("moved").GetInt32());
            var rolledBack = await lab.WaitForLogAsync(1, l => l.Contains("HandoverRolledBack"));
            Assert.Contains($"{Circuits} circuit(s) go on here", Assert.Single(rolledBack));
            var n1Addresses = await lab.AddressesAsync(1);
            Assert.Contains("198.18.0.10/", n1Addresses);
            Assert.Contains("198.18.1.10/", n1Addresses);

            // The owner serves new clients again: its route's listener is bound next to the thawed circuits.
            foreach (var fresh in await lab.OpenCircuitsAsync(1, firstId: 1000))
            {
                fresh.Dispose();
            }

            // Past the dead target's guard (8 s) and its sockets' first retransmissions (1, 3, 7, 15 s):
            // whatever its kernel sends for the restored tuples has reached the peers by then.
            var afterRollback = traffic.Received;
            await Task.Delay(TimeSpan.FromSeconds(20));
            Assert.True(traffic.Received > afterRollback + (Circuits * 64 * 1024), $"the circuits stalled on n1 after the rollback: {traffic.Received - afterRollback} bytes in 20 s");

            // The dead target had added the addresses with a lifetime until its commit (handover
            // timeout + 5 s): its kernel removed them by itself, with no process left there.
            var expired = await lab.AddressesAsync(2);
            Assert.DoesNotContain("198.18.0.10/", expired);
            Assert.DoesNotContain("198.18.1.10/", expired);

            // A crashed node comes back (systemd's Restart=): it clears what the dead process left, and stands by.
            output.WriteLine("--- the killed n2's log\n" + string.Join('\n', (await File.ReadAllLinesAsync(lab.LogOf(2))).Where(l => !l.Contains("dead letters"))));
            await lab.ClusterAsync("start", "2", "--config", extra);
            await lab.WaitForLogAsync(2, l => l.Contains("MemberUp"), 2);
            var n2Addresses = await lab.AddressesAsync(2);
            Assert.DoesNotContain("198.18.0.10/", n2Addresses);
            Assert.DoesNotContain("198.18.1.10/", n2Addresses);

            await lab.FinishIntactAsync(traffic, circuits, TimeSpan.FromMinutes(3));
            foreach (var circuit in circuits)
            {
                circuit.Dispose();
            }

            var closed = await lab.WaitForLogAsync(1, l => l.Contains("CircuitClosed"), Circuits);
            Assert.All(closed, l => Assert.Contains(": complete ", l));
        }
        finally
        {
            foreach (var circuit in circuits)
            {
                circuit.Dispose();
            }
        }
    }

    /// <summary>
    /// A handover to a host that is no member, and one asked of the standby, are refused before
    /// anything is frozen: one line, exit 3, and the circuits never notice.
    /// </summary>
    [RootLabFact]
    public async Task A_target_that_is_not_a_member_or_a_node_that_does_not_own_the_service_is_refused_cleanly()
    {
        await using var lab = await HandoverLab.UpAsync("rhops-rf", output);
        await lab.StartPairAsync();
        var circuits = await lab.OpenCircuitsAsync(4);
        using var traffic = new LabTraffic(circuits, rate: 64 * 1024, idle: new HashSet<int>());
        try
        {
            await Eventually.Holds(() => traffic.Received > 4 * 64 * 1024, "bytes flowing through n1", TimeSpan.FromSeconds(30));

            var (exit, outcome) = await lab.HandOverAsync(1, "198.18.0.9");
            Assert.Equal(3, exit);
            Assert.Equal("failed", outcome.GetProperty("result").GetString());
            Assert.StartsWith("198.18.0.9 is not an Up member other than this node", outcome.GetProperty("detail").GetString());
            Assert.Equal(4, outcome.GetProperty("stayed").GetInt32());

            var (standbyExit, standby) = await lab.HandOverAsync(2);
            Assert.Equal(3, standbyExit);
            Assert.Equal("failed", standby.GetProperty("result").GetString());
            Assert.Contains("does not own the service", standby.GetProperty("detail").GetString());

            // Nothing was frozen: no HandoverStarted, and the circuits go on.
            Assert.DoesNotContain(await File.ReadAllLinesAsync(lab.LogOf(1)), l => l.Contains("HandoverStarted"));
            var before = traffic.Received;
            await Eventually.Holds(() => traffic.Received > before + (4 * 64 * 1024), "bytes still flowing", TimeSpan.FromSeconds(30));

            // A target whose state channel the owner cannot reach (a firewall between the
            // members' ephemeral ports: n2 drops n1's SYNs to anything but Akka's port): the
            // owner connects before it freezes anything, so the circuits stream on while it
            // tries, and the handover fails without a rollback.
            await RunAsync("sh", ["-c",
                "printf 'table inet rhops_fw {\\n chain in {\\n type filter hook input priority 0;\\n tcp dport 2552 accept\\n" +
                " ip saddr 198.18.0.2 tcp flags & (syn | ack) == syn counter drop\\n }\\n }\\n'" +
                $" | ip netns exec {lab.Prefix}n2 nft -f -"], null);
            var unreachable = lab.HandOverAsync(1);
            await Eventually.Holds(async () => await DroppedAsync(lab.Prefix + "n2", "rhops_fw") > 0, "the owner trying to reach the state channel",
                TimeSpan.FromSeconds(30), every: TimeSpan.FromMilliseconds(20));
            var whileTrying = traffic.Received;
            await Eventually.Holds(() => traffic.Received > whileTrying + (4 * 64 * 1024), "bytes flowing while the owner tries", TimeSpan.FromSeconds(4));
            var (fwExit, fw) = await unreachable.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(3, fwExit);
            Assert.Equal("failed", fw.GetProperty("result").GetString());
            Assert.Contains("state channel", fw.GetProperty("detail").GetString());
            Assert.Contains("(nothing was frozen)", fw.GetProperty("detail").GetString());
            Assert.DoesNotContain(await File.ReadAllLinesAsync(lab.LogOf(1)), l => l.Contains("HandoverRolledBack"));
            await RunAsync("ip", ["netns", "exec", $"{lab.Prefix}n2", "nft", "delete", "table", "inet", "rhops_fw"], null);

            await lab.FinishIntactAsync(traffic, circuits, TimeSpan.FromMinutes(2));
        }
        finally
        {
            foreach (var circuit in circuits)
            {
                circuit.Dispose();
            }
        }
    }

    /// <summary>How many segments the hold rule in <paramref name="ns"/> dropped.</summary>
    private static Task<long> HeldAnswersAsync(string ns) => DroppedAsync(ns, "rhops_hold");

    /// <summary>How many packets the counter rule of nft table <paramref name="table"/> in <paramref name="ns"/> dropped.</summary>
    private static async Task<long> DroppedAsync(string ns, string table)
    {
        var listing = await RunAsync("ip", ["netns", "exec", ns, "nft", "list", "table", "inet", table], null);
        var at = listing.IndexOf("packets ", StringComparison.Ordinal);
        return long.Parse(listing[(at + 8)..].Split(' ')[0]);
    }
}
