using Akka.Configuration;
using Relay.Actors.Configuration;

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
    public void A_bad_cluster_value_names_its_key(string hocon, string key, string problem)
    {
        var e = Assert.Throws<RelayConfigException>(() => RelaySettings.Create(ConfigurationFactory.ParseString($"relay.cluster {{ {hocon} }}")));
        Assert.Contains(key, e.Message);
        Assert.Contains(problem, e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }
}
