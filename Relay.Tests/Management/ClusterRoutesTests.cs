using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Relay.Host.Management;
using Relay.Tests.Support;

using Relay.Tests.Cluster;

namespace Relay.Tests.Management;

/// <summary>The management API of a clustered node: members, member operations, circuits and metrics.</summary>
public sealed class ClusterRoutesTests
{
    private const string Token = "cluster-test-token";

    [Fact]
    public async Task Members_lost_circuits_and_owner_metrics_are_served_in_akka_management_shapes()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var cluster = new ClusterHarness();
        var settings = ClusterHarness.Settings(upstream.Endpoint);
        var owner = await cluster.AddAsync(settings);
        var standby = await cluster.AddAsync(settings);
        await using var server = await ManagementServer.StartAsync(new IPEndPoint(IPAddress.Loopback, 0),
            new ManagementContext(owner.Circuits, () => owner.IsReady, owner.NodeName, Serilog.Log.Logger, Token, owner), CancellationToken.None);
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        await ClusterHarness.Until(() => owner.Cluster!.Service.IsOwner, "the first node to own the service");

        using var members = JsonDocument.Parse(await http.GetStringAsync("/cluster/members"));
        Assert.Equal(owner.NodeName, members.RootElement.GetProperty("selfNode").GetString());
        Assert.Equal(owner.NodeName, members.RootElement.GetProperty("oldest").GetString());
        var rows = members.RootElement.GetProperty("members").EnumerateArray().ToList();
        Assert.Equal(2, rows.Count);
        Assert.All(rows, m => Assert.Equal("Up", m.GetProperty("status").GetString()));
        Assert.All(rows, m => Assert.False(string.IsNullOrEmpty(m.GetProperty("nodeUid").GetString())));
        Assert.Empty(members.RootElement.GetProperty("unreachable").EnumerateArray());

        using var one = JsonDocument.Parse(await http.GetStringAsync("/cluster/members/" + standby.NodeName));
        Assert.Equal(standby.NodeName, one.RootElement.GetProperty("node").GetString());
        using var missing = await http.GetAsync("/cluster/members/akka.tcp://relay@127.0.0.1:1");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Contains("not found", await missing.Content.ReadAsStringAsync());

        var metrics = await http.GetStringAsync("/metrics");
        Assert.Contains("relay_service_owner 1\n", metrics);
        Assert.Contains("relay_cluster_members{status=\"up\"} 2\n", metrics);

        // Downing needs the token.
        var down = new FormUrlEncodedContent([new KeyValuePair<string, string>("operation", "Down")]);
        using (var refused = await http.PutAsync("/cluster/members/" + standby.NodeName, down))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }

        // The standby's circuits replicate, then the operator downs it (it shuts itself down).
        CircuitTableReplicationTests.FillTable(standby, 2);
        await ClusterHarness.Until(() => owner.Cluster!.Table.RemoteCount == 2, "the standby's circuits to replicate");
        using var listed = JsonDocument.Parse(await http.GetStringAsync("/circuits?node=" + Uri.EscapeDataString(standby.NodeName)));
        Assert.Equal(2, listed.RootElement.GetArrayLength());

        using var request = new HttpRequestMessage(HttpMethod.Put, "/cluster/members/" + standby.NodeName) { Content = down };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        using (var downed = await http.SendAsync(request))
        {
            Assert.Equal(HttpStatusCode.OK, downed.StatusCode);
            Assert.Equal($"{{\"message\":\"Downing {standby.NodeName}\"}}", await downed.Content.ReadAsStringAsync());
        }

        await ClusterHarness.Until(() => owner.Cluster!.Table.Lost().Count == 2, "the standby's circuits to be lost");
        using var lost = JsonDocument.Parse(await http.GetStringAsync("/circuits?state=lost"));
        Assert.Equal(2, lost.RootElement.GetArrayLength());
        Assert.All(lost.RootElement.EnumerateArray(), c => Assert.Equal(standby.NodeName, c.GetProperty("node").GetString()));
        Assert.All(lost.RootElement.EnumerateArray(), c => Assert.Equal("lost", c.GetProperty("state").GetString()));
    }
}
