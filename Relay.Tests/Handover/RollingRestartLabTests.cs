using Relay.Tests.Support;
using Xunit.Abstractions;

namespace Relay.Tests.Handover;

/// <summary>
/// A rolling restart of a pair with real relay processes (root, <see cref="HandoverLab"/>):
/// circuits stream a pattern both ways through the VIP while the owner gets SIGTERM
/// (<c>relay.cluster.handover.on-leave = on</c>, the default, so it hands every circuit to the
/// standby before it goes), is started again, joins as the standby without taking the service,
/// and gets the circuits back with <c>relay handover --to</c>. Every byte arrives exactly once
/// and in order, no reset reaches the client or the server, and every circuit closes with its
/// FINs on the node it ends on. The restarted node takes one wave (<c>handover.waves = 1</c>,
/// as a relay that predates waves): the hand back runs between a two-wave and a one-wave
/// node, as the two halves of a pair do mid upgrade.
/// </summary>
public sealed class RollingRestartLabTests(ITestOutputHelper output)
{
    private const int Circuits = 8;

    [RootLabFact]
    public async Task Sigterm_on_the_owner_moves_its_circuits_to_the_standby_the_restarted_node_stands_by_and_takes_them_back_intact()
    {
        await using var lab = await HandoverLab.UpAsync("rhops-roll", output);
        await lab.StartPairAsync();
        var circuits = await lab.OpenCircuitsAsync(Circuits);
        // Circuit 0 stays idle until the end: an idle circuit must survive both moves too.
        using var traffic = new LabTraffic(circuits, rate: 64 * 1024, idle: new HashSet<int> { 0 });
        try
        {
            await Eventually.Holds(() => traffic.Received > Circuits * 64 * 1024, "bytes flowing through n1", TimeSpan.FromSeconds(30));

            // SIGTERM, and wait for the process to exit: it hands over, then stops.
            await lab.ClusterAsync("stop", "1", "TERM");
            var oldLog = await File.ReadAllLinesAsync(lab.LogOf(1));
            output.WriteLine("--- the stopped n1's log\n" + string.Join('\n', oldLog.Where(l => !l.Contains("dead letters"))));
            var completed = Assert.Single(oldLog, l => l.Contains("HandoverCompleted"));
            Assert.Contains($": {Circuits} circuit(s) moved, 0 stayed, 0 reset", completed);
            Assert.Contains(" in 2 wave(s),", completed);
            // The start-up rehearsal (a loopback connection handed over within the process) passed.
            Assert.DoesNotContain(oldLog, l => l.Contains("HandoverRehearsalFailed"));
            Assert.Contains(oldLog, l => l.Contains("HandoverStarted") && l.Contains("(shutdown)"));
            await lab.WaitForLogAsync(2, l => l.Contains("HandoverReceived") && l.Contains($": {Circuits} circuit(s) now run here"));
            // n1 left right after: the circuits it handed over run on n2 and are not listed as lost with it.
            var gone = Assert.Single(await lab.WaitForLogAsync(2, l => l.Contains("NodeCircuitsLost")));
            Assert.Contains("; 0 open circuit(s) listed as lost", gone);
            Assert.DoesNotContain(await File.ReadAllLinesAsync(lab.LogOf(2)), l => l.Contains("CircuitLost circuit"));

            // The circuits go on through n2 while n1 is down.
            var beforeRestart = traffic.Received;
            await Eventually.Holds(() => traffic.Received > beforeRestart + (Circuits * 64 * 1024),
                "bytes flowing through n2", TimeSpan.FromSeconds(30));

            var oneWave = Path.Combine(Path.GetDirectoryName(lab.LogOf(1))!, "one-wave.conf");
            await File.WriteAllTextAsync(oneWave, "relay.cluster.handover.waves = 1\n");
            await lab.ClusterAsync("start", "1", "--config", oneWave);
            // Its own MemberUp (the member count in that line may still read 0), and n2's second one.
            await lab.WaitForLogAsync(1, l => l.Contains("MemberUp") && l.Contains("198.18.0.2:2552"));
            await lab.WaitForLogAsync(2, l => l.Contains("MemberUp") && l.Contains("198.18.0.2:2552"), 2);
            // Up for a few publish intervals and singleton hand-offs: still a standby, without the addresses.
            await Task.Delay(2000);
            Assert.DoesNotContain(await File.ReadAllLinesAsync(lab.LogOf(1)), l => l.Contains("ServiceTakenOver"));
            var n1Addresses = await lab.AddressesAsync(1);
            Assert.DoesNotContain("198.18.0.10/", n1Addresses);
            Assert.DoesNotContain("198.18.1.10/", n1Addresses);
            var n2Addresses = await lab.AddressesAsync(2);
            Assert.Contains("198.18.0.10/", n2Addresses);
            Assert.Contains("198.18.1.10/", n2Addresses);

            // Hand back with the relay's own CLI, run on n2.
            var (exit, back) = await lab.HandOverAsync(2, "198.18.0.2");
            Assert.Equal(0, exit);
            Assert.Equal("completed", back.GetProperty("result").GetString());
            Assert.Equal(Circuits, back.GetProperty("moved").GetInt32());
            // n2 asked for two waves; n1, restarted as a one-wave node, answered one.
            Assert.Equal(1, back.GetProperty("waves").GetInt32());

            var afterBack = traffic.Received;
            await Eventually.Holds(() => traffic.Received > afterBack + (Circuits * 64 * 1024), "bytes flowing through n1 again", TimeSpan.FromSeconds(30));
            await lab.FinishIntactAsync(traffic, circuits, TimeSpan.FromMinutes(3));
            foreach (var circuit in circuits)
            {
                circuit.Dispose();
            }

            // Each circuit ends on n1 with both FINs, as if it had never moved.
            var closed = await lab.WaitForLogAsync(1, l => l.Contains("CircuitClosed"), Circuits);
            Assert.All(closed, l => Assert.Contains(": complete ", l));
            output.WriteLine($"moved n1 -> n2 on SIGTERM and back; {traffic.Received} bytes checked");
        }
        finally
        {
            foreach (var circuit in circuits)
            {
                circuit.Dispose();
            }
        }
    }
}
