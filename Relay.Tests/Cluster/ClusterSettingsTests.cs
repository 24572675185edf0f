using System.Net;
using Akka.Configuration;
using Relay.Actors.Configuration;
using Relay.Host.Cli;

namespace Relay.Tests.Cluster;

/// <summary><c>relay.cluster</c>: defaults, and one clear line naming the key for each bad value.</summary>
public sealed class ClusterSettingsTests
{
    [Fact]
    public void Clustering_is_off_by_default_with_the_documented_defaults()
    {
        var cluster = RelaySettings.Create(Config.Empty).Cluster;
        Assert.Equal(ClusterSettings.Off, cluster);
        Assert.False(cluster.Enabled);
        Assert.Equal(ClusterMode.ActiveStandby, cluster.Mode);
        Assert.Equal(TimeSpan.FromSeconds(1), cluster.PublishInterval);
        Assert.Equal(64, cluster.StateShards);
        Assert.Equal(TimeSpan.FromHours(1), cluster.LostRetention);
        Assert.Null(cluster.EgressVip);
        Assert.Null(cluster.EgressVipDevice);
        Assert.Empty(cluster.FloatingAddresses);
        Assert.Equal(new HandoverSettings(true, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(60), 256), cluster.Handover);
    }

    [Fact]
    public void A_full_cluster_section_is_read()
    {
        var cluster = RelaySettings.Create(ConfigurationFactory.ParseString("""
            relay.cluster { enabled = on, mode = active-active, vip = "198.18.0.10/24", vip-device = "eth0",
                            publish-interval = 250ms, state-shards = 16, lost-retention = 10m }
            """)).Cluster;
        Assert.True(cluster.Enabled);
        Assert.Equal(ClusterMode.ActiveActive, cluster.Mode);
        Assert.Equal("198.18.0.10/24", cluster.Vip!.ToString());
        Assert.Equal("eth0", cluster.VipDevice);
        Assert.Equal(TimeSpan.FromMilliseconds(250), cluster.PublishInterval);
        Assert.Equal(16, cluster.StateShards);
        Assert.Equal(TimeSpan.FromMinutes(10), cluster.LostRetention);
    }

    [Fact]
    public void An_egress_vip_and_the_handover_block_are_read_and_the_owner_holds_both_addresses_vip_first()
    {
        var cluster = RelaySettings.Create(ConfigurationFactory.ParseString("""
            relay.cluster {
              enabled = on, vip = "198.18.0.10/24", vip-device = "eth0", egress-vip = "198.18.1.10/24", egress-vip-device = "eth1"
              handover { on-leave = off, timeout = 2s, guard-timeout = 90s, batch-size = 64, waves = 1 }
            }
            """)).Cluster;
        Assert.Equal("198.18.1.10/24", cluster.EgressVip!.ToString());
        Assert.Equal("eth1", cluster.EgressVipDevice);
        Assert.Equal(new HandoverSettings(false, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(90), 64, 1), cluster.Handover);
        Assert.Equal(
            [
                new FloatingAddress(FloatingAddressKind.Service, new VirtualIp(IPAddress.Parse("198.18.0.10"), 24), "eth0"),
                new FloatingAddress(FloatingAddressKind.Egress, new VirtualIp(IPAddress.Parse("198.18.1.10"), 24), "eth1"),
            ],
            cluster.FloatingAddresses);
        Assert.Equal("egress VIP 198.18.1.10/24 on eth1", cluster.FloatingAddresses[1].ToString());
    }

    [Theory]
    [InlineData("egress-vip = \"2001:2:1::10/64\", egress-vip-device = eth0", "2001:2:1::10/64", "eth0")] // IPv6, on the VIP's own device
    [InlineData("egress-vip = \"198.18.1.10/32\", egress-vip-device = \"bond0.42\"", "198.18.1.10/32", "bond0.42")]
    public void An_egress_vip_may_be_ipv6_and_may_share_the_vips_device(string hocon, string vip, string device)
    {
        var cluster = RelaySettings.Create(ConfigurationFactory.ParseString(
            $"relay.cluster {{ vip = \"198.18.0.10/24\", vip-device = eth0, {hocon} }}")).Cluster;
        Assert.Equal(vip, cluster.EgressVip!.ToString());
        Assert.Equal(device, cluster.EgressVipDevice);
        Assert.Equal(2, cluster.FloatingAddresses.Count);
    }

    [Theory]
    [InlineData("egress-vip = \"198.18.1.10/24\"",
        "relay.cluster.egress-vip-device = \"\": must name the device that holds the egress VIP 198.18.1.10/24")]
    [InlineData("egress-vip-device = eth1",
        "relay.cluster.egress-vip = \"\": is empty, but egress-vip-device is \"eth1\": set both or neither")]
    [InlineData("mode = active-active, egress-vip = \"198.18.1.10/24\", egress-vip-device = eth1",
        "relay.cluster.egress-vip = \"198.18.1.10/24\": cannot be used with mode = active-active: only the owner holds the egress VIP, so the upstream connections of the other active nodes could not be bound to it")]
    [InlineData("vip = \"198.18.0.10/24\", vip-device = eth0, egress-vip = \"198.18.0.10/32\", egress-vip-device = eth1",
        "relay.cluster.egress-vip = \"198.18.0.10/32\": is the VIP's address: the egress VIP must be a second address, on the upstream-side network")]
    [InlineData("egress-vip = \"198.18.1.10\", egress-vip-device = eth1",
        "relay.cluster.egress-vip = \"198.18.1.10\": must be an address with its prefix length, like \"198.18.1.10/24\", or \"\" for none")]
    [InlineData("egress-vip = \"198.18.1.10/24\", egress-vip-device = \"eth1 up\"",
        "relay.cluster.egress-vip-device = \"eth1 up\": must be a network device name like eth0 (1 to 15 letters, digits, '.', '_', '-' or '@')")]
    [InlineData("handover.on-leave = maybe", "relay.cluster.handover.on-leave = \"maybe\": must be on or off (true or false)")]
    [InlineData("handover.timeout = 0s", "relay.cluster.handover.timeout = \"0s\": must be greater than 0 and at most 1m")]
    [InlineData("handover.timeout = 10s, handover.guard-timeout = 10s",
        "relay.cluster.handover.guard-timeout = \"10s\": must be longer than handover.timeout (10s): the moved circuits' tuples must stay dropped on the old node until after the handover")]
    [InlineData("handover.batch-size = 0", "relay.cluster.handover.batch-size = \"0\": must be a whole number from 1 to 65536")]
    [InlineData("handover.waves = 3", "relay.cluster.handover.waves = \"3\": must be a whole number from 1 to 2")]
    public void A_bad_egress_vip_or_handover_value_is_one_exact_line(string hocon, string message)
    {
        var e = Assert.Throws<RelayConfigException>(() => RelaySettings.Create(ConfigurationFactory.ParseString($"relay.cluster {{ {hocon} }}")));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public async Task Check_config_refuses_an_egress_vip_in_active_active_mode_with_one_line_and_exit_code_2()
    {
        var path = Path.Combine(Path.GetTempPath(), $"relay-egress-{Environment.ProcessId}-{Guid.NewGuid():N}.conf");
        File.WriteAllText(path, """
            relay.cluster { enabled = on, mode = active-active, vip = "198.18.0.10/24", vip-device = eth0,
                            egress-vip = "198.18.1.10/24", egress-vip-device = eth1 }
            """);
        try
        {
            Task<int> Unused<T>(T request, CancellationToken _) => throw new InvalidOperationException("check-config runs no handler");
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            var code = await RelayCli.InvokeAsync(["check-config", path], new RelayCliHandlers(Unused, Unused, Unused, Unused), stdout, stderr);

            Assert.Equal(2, code);
            Assert.Equal("", stdout.ToString());
            Assert.Equal(
                "relay: relay.cluster.egress-vip = \"198.18.1.10/24\": cannot be used with mode = active-active: only the owner holds the egress VIP, so the upstream connections of the other active nodes could not be bound to it",
                stderr.ToString().TrimEnd('\n'));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("mode = hot", "relay.cluster.mode", "active-standby or active-active")]
    [InlineData("vip = \"198.18.0.10\", vip-device = eth0", "relay.cluster.vip", "prefix length")]
    [InlineData("vip = \"198.18.0.10/33\", vip-device = eth0", "relay.cluster.vip", "prefix length")]
    [InlineData("vip = \"198.18.0.10/24\"", "relay.cluster.vip-device", "must name the device")]
    [InlineData("vip-device = eth0", "relay.cluster.vip", "set both or neither")]
    [InlineData("vip = \"198.18.0.10/24\", vip-device = \"eth0; reboot\"", "relay.cluster.vip-device", "device name")]
    [InlineData("state-shards = 0", "relay.cluster.state-shards", "")]
    [InlineData("publish-interval = soon", "relay.cluster.publish-interval", "duration")]
    [InlineData("heartbeat = 1s", "relay.cluster.heartbeat", "")]
    [InlineData("handover.pause = 1s", "relay.cluster.handover.pause", "")]
    public void A_bad_cluster_value_names_its_key(string hocon, string key, string problem)
    {
        var e = Assert.Throws<RelayConfigException>(() => RelaySettings.Create(ConfigurationFactory.ParseString($"relay.cluster {{ {hocon} }}")));
        Assert.Contains(key, e.Message);
        Assert.Contains(problem, e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }
}
