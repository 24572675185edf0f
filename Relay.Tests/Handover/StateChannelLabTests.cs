using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Relay.Tests.Native;
using Relay.Tests.Support;
using Xunit.Abstractions;
using static Relay.Tests.Cluster.ClusterLab;

namespace Relay.Tests.Handover;

/// <summary>
/// The state channel in a real cluster (root, <see cref="HandoverLab"/>): only the member
/// handing over may push circuits to the target. <c>StateChannelTests</c> check the offer's
/// rules on loopback; this checks them where they matter, on the target's cluster address
/// during a real handover, against a non-member host and against the source member's own
/// address without the token.
/// </summary>
public sealed class StateChannelLabTests(ITestOutputHelper output)
{
    private const int Circuits = 4;

    /// <summary>
    /// The source's connection to the offer is held back (an nft rule in the target's
    /// namespace drops its SYNs, and counts them: the moment the source is trying, which it does
    /// before it freezes anything),
    /// so the offer stays open while the intruders try: a connection from the client's host
    /// with a token-sized push of circuit bytes, one from the source's address with a wrong
    /// token followed by a circuits frame, and one from there that sends nothing. Each is
    /// refused, none gets the channel's version byte, and once the rule goes the real source
    /// gets in and every circuit moves intact.
    /// </summary>
    [RootLabFact]
    public async Task Only_the_member_handing_over_with_its_token_can_push_circuits_to_the_target()
    {
        await using var lab = await HandoverLab.UpAsync("rhops-sc", output);
        // Room for the intruders while the source's SYN is held (its retries come at 1, 3, 7 s).
        await lab.StartPairAsync("relay.cluster.handover { timeout = 20s }\n");
        var target = $"{lab.Prefix}n2";

        // Outside a handover nothing but Akka listens on the target's cluster address.
        Assert.Equal(["198.18.0.3:2552"], await ListeningAsync(target));

        var circuits = await lab.OpenCircuitsAsync(Circuits);
        using var traffic = new LabTraffic(circuits, rate: 64 * 1024, idle: new HashSet<int>());
        try
        {
            await Eventually.Holds(() => traffic.Received > Circuits * 64 * 1024, "bytes flowing through n1", TimeSpan.FromSeconds(30));
            await RunAsync("sh", ["-c",
                "printf 'table inet rhops_syn {\\n chain in {\\n type filter hook input priority 0;\\n" +
                $" tcp dport 2552 accept\\n tcp sport {HandoverLab.ProbePorts}-{HandoverLab.ProbePorts + 9} accept\\n" +
                " ip saddr 198.18.0.2 tcp flags & (syn | ack) == syn counter drop\\n }\\n }\\n'" +
                $" | ip netns exec {target} nft -f -"], null);

            var handover = lab.HandOverAsync(1);
            await Eventually.Holds(async () => await DroppedSynsAsync(target) > 0, "the source's connection to the offer held back",
                TimeSpan.FromSeconds(30), every: TimeSpan.FromMilliseconds(20));
            var offer = Assert.Single(await ListeningAsync(target), l => l != "198.18.0.3:2552");
            var offerEndpoint = IPEndPoint.Parse(offer);
            output.WriteLine($"offer on {offerEndpoint}");

            // Bytes an intruder would push: a token's worth, then what looks like a circuits frame.
            var push = RandomNumberGenerator.GetBytes(32 + 64);
            var fromClientHost = Intrude(lab.Prefix + "cli", "198.18.0.1", HandoverLab.ProbePorts, offerEndpoint, push);
            var wrongToken = Intrude(lab.Prefix + "n1", "198.18.0.2", HandoverLab.ProbePorts + 1, offerEndpoint, push);
            var noToken = Intrude(lab.Prefix + "n1", "198.18.0.2", HandoverLab.ProbePorts + 2, offerEndpoint, []);
            var answers = await Task.WhenAll(fromClientHost, wrongToken, noToken).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.All(answers, answer => Assert.Equal("closed without an answer", answer));
            await lab.WaitForLogAsync(2, l => l.Contains("StateChannelRejected") && l.Contains($"198.18.0.1:{HandoverLab.ProbePorts}") && l.Contains("not the expected member"));
            await lab.WaitForLogAsync(2, l => l.Contains("StateChannelRejected") && l.Contains($"198.18.0.2:{HandoverLab.ProbePorts + 1}") && l.Contains("wrong token"));
            await lab.WaitForLogAsync(2, l => l.Contains("StateChannelRejected") && l.Contains($"198.18.0.2:{HandoverLab.ProbePorts + 2}") && l.Contains("no token"));

            await RunAsync("ip", ["netns", "exec", target, "nft", "delete", "table", "inet", "rhops_syn"], null);
            var (exit, outcome) = await handover.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(0, exit);
            Assert.Equal(Circuits, outcome.GetProperty("moved").GetInt32());
            var received = Assert.Single(await lab.WaitForLogAsync(2, l => l.Contains("HandoverReceived")));
            Assert.Contains($"{Circuits} circuit(s) now run here, 0 could not be taken", received);
            Assert.Equal(["198.18.0.3:2552"], await ListeningAsync(target));

            var after = traffic.Received;
            await Eventually.Holds(() => traffic.Received > after + (Circuits * 64 * 1024), "bytes flowing through n2", TimeSpan.FromSeconds(30));
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

    /// <summary>
    /// Connects from <paramref name="ns"/> (bound to <paramref name="ip"/>:<paramref name="port"/>)
    /// to the offer, sends <paramref name="push"/>, and reads: the channel's answer is one
    /// version byte, which an intruder must never get.
    /// </summary>
    private static async Task<string> Intrude(string ns, string ip, int port, IPEndPoint offer, byte[] push)
    {
        using var socket = NetworkNamespace.Run(ns, () =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            s.Bind(new IPEndPoint(IPAddress.Parse(ip), port));
            s.Connect(offer);
            return s;
        });
        if (push.Length > 0)
        {
            await socket.SendAsync(push, SocketFlags.None);
        }

        var answer = new byte[1];
        try
        {
            var read = await socket.ReceiveAsync(answer, SocketFlags.None).WaitAsync(TimeSpan.FromSeconds(20));
            return read == 0 ? "closed without an answer" : $"answered {answer[0]}";
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            return "closed without an answer";
        }
    }

    /// <summary>The TCP endpoints listening on the node's cluster address (198.18.0.3) in <paramref name="ns"/>.</summary>
    private static async Task<string[]> ListeningAsync(string ns)
    {
        var listing = await RunAsync("ip", ["netns", "exec", ns, "ss", "-Hltn"], null);
        return listing.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3].Replace("[::ffff:", "").Replace("]", ""))
            .Where(l => l.StartsWith("198.18.0.3:", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToArray();
    }

    private static async Task<long> DroppedSynsAsync(string ns)
    {
        var listing = await RunAsync("ip", ["netns", "exec", ns, "nft", "list", "table", "inet", "rhops_syn"], null);
        var at = listing.IndexOf("packets ", StringComparison.Ordinal);
        return long.Parse(listing[(at + 8)..].Split(' ')[0]);
    }
}
