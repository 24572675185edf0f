using System.Net;
using System.Net.Sockets;
using System.Text;
using Relay.Actors.Circuits;
using Relay.Host.Management;
using Relay.Tests.Support;

namespace Relay.Tests.Management;

public sealed class MetricsRoutesTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Metrics_is_Prometheus_text_with_HELP_and_TYPE_for_every_family()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(upstream.Endpoint);

        using var response = await relay.Http.GetAsync("/metrics");
        var samples = PrometheusText.Parse(await response.Content.ReadAsStringAsync());

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        Assert.Equal(1, samples.Value("relay_up"));
        Assert.Equal(0, samples.Value("relay_circuits_active", ("route", "test")));
        Assert.Equal(2, samples.Count(s => s.Name == "relay_core_circuits_active"));
        // One sample per known close reason, zeros included (the transparent routes' reasons too).
        Assert.Equal(Relay.Actors.Metrics.RouteMetrics.KnownReasons.Count, samples.Count(s => s.Name == "relay_circuits_closed_total"));
        Assert.Equal(Relay.Actors.Metrics.RouteMetrics.KnownReasons.Count - 1, samples.Count(s => s.Name == "relay_circuit_errors_total"));
        Assert.DoesNotContain(samples, s => s.Name == "relay_circuit_errors_total" && s.Labels["reason"] == "complete");
        Assert.Equal(14, samples.Count(s => s.Name == "relay_upstream_connect_seconds_bucket"));
        // The runtime's own counters, under prometheus-net's names.
        Assert.Equal(GC.MaxGeneration + 1, samples.Count(s => s.Name == "dotnet_collection_count_total"));
        Assert.True(samples.Value("dotnet_gc_allocated_bytes_total") > 0);
        Assert.True(samples.Value("dotnet_total_memory_bytes") > 0);
        Assert.True(samples.Value("dotnet_gc_pause_seconds_total") >= 0);
    }

    [Fact]
    public async Task Head_on_metrics_answers_200_with_the_content_type_and_length_of_GET_and_no_body()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(upstream.Endpoint);

        using var head = await relay.Http.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/metrics"));

        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", head.Content.Headers.ContentType?.ToString());
        // The length GET would send (the text differs slightly from one scrape to the next).
        var length = head.Content.Headers.ContentLength;
        Assert.InRange(length ?? 0, 1000, 1_000_000);
        Assert.InRange(Encoding.UTF8.GetByteCount(await relay.GetTextAsync("/metrics")), length!.Value - 200, length.Value + 200);
        Assert.Empty(await head.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task A_node_that_is_not_clustered_exports_no_cluster_families()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(upstream.Endpoint);

        var text = await relay.GetTextAsync("/metrics");

        Assert.Null(relay.Node.Cluster);
        Assert.Contains("relay_up 1\n", text);
        Assert.DoesNotContain("relay_service_owner", text);
        Assert.DoesNotContain("relay_cluster_members", text);
    }

    [Fact]
    public async Task Counters_move_when_traffic_flows_through_a_circuit()
    {
        const int Size = 1024 * 1024;
        await using var upstream = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(upstream.Endpoint);

        using (var client = await SocketIo.ConnectAsync(relay.Listen))
        {
            var reading = SocketIo.ReadToEndAsync(client);
            await SocketIo.SendRandomAsync(client, Size, seed: 1);
            client.Shutdown(SocketShutdown.Send);
            var (echoed, _) = await reading.WaitAsync(Timeout);
            Assert.Equal(Size, echoed);
        }

        await Eventually.Holds(() => relay.Node.Circuits.Count == 0, "the circuit to close");
        var samples = PrometheusText.Parse(await relay.GetTextAsync("/metrics"));

        Assert.Equal(1, samples.Value("relay_accepts_total", ("route", "test")));
        Assert.Equal(1, samples.Value("relay_circuits_total", ("route", "test")));
        Assert.Equal(0, samples.Value("relay_circuits_active", ("route", "test")));
        Assert.True(samples.Value("relay_bytes_total", ("route", "test"), ("direction", "up")) >= Size);
        Assert.True(samples.Value("relay_bytes_total", ("route", "test"), ("direction", "down")) >= Size);
        Assert.Equal(1, samples.Value("relay_circuits_closed_total", ("route", "test"), ("reason", "complete")));
        Assert.Equal(1, samples.Value("relay_upstream_connect_seconds_count", ("route", "test")));
        Assert.Equal(1, samples.Value("relay_upstream_connect_seconds_bucket", ("route", "test"), ("le", "+Inf")));
        Assert.True(samples.Value("relay_upstream_connect_seconds_sum", ("route", "test")) > 0);
    }

    [Fact]
    public async Task Bytes_of_an_open_circuit_are_counted_while_it_is_open()
    {
        await using var upstream = new TestServer(TestServer.Echo);
        await using var relay = await LiveRelay.StartAsync(upstream.Endpoint);
        using var client = await SocketIo.ConnectAsync(relay.Listen);

        await client.SendAsync(new byte[1000], SocketFlags.None);
        await SocketIo.ReadExactlyAsync(client, 1000).WaitAsync(Timeout);
        // The relay counts a write once its send(2) returns, and the client may read the bytes
        // (and scrape) before the core thread gets there: a loaded machine preempts it in between.
        IReadOnlyList<PrometheusText.Sample> samples = [];
        await Eventually.Holds(async () =>
        {
            samples = PrometheusText.Parse(await relay.GetTextAsync("/metrics"));
            return samples.Value("relay_bytes_total", ("route", "test"), ("direction", "down")) >= 1000;
        }, "the bytes echoed to be counted");

        Assert.Equal(1, samples.Value("relay_circuits_active", ("route", "test")));
        Assert.Equal(1, samples.Where(s => s.Name == "relay_core_circuits_active").Sum(s => s.Value));
        Assert.Equal(1000, samples.Value("relay_bytes_total", ("route", "test"), ("direction", "up")));
        Assert.Equal(1000, samples.Value("relay_bytes_total", ("route", "test"), ("direction", "down")));
    }

    [Fact]
    public async Task A_refused_upstream_counts_as_an_upstream_refused_circuit_error()
    {
        var refusing = new IPEndPoint(IPAddress.Loopback, Endpoints.ClosedPort());
        await using var relay = await LiveRelay.StartAsync(refusing);

        Assert.Equal("reset", await SocketIo.ConnectThenReadUntilClosedAsync(relay.Listen, Timeout));

        await Eventually.Holds(() => relay.Node.Circuits.Count == 0, "the circuit to close");
        var samples = PrometheusText.Parse(await relay.GetTextAsync("/metrics"));

        Assert.Equal(1, samples.Value("relay_circuit_errors_total", ("route", "test"), ("reason", CloseReasons.UpstreamRefused)));
        Assert.Equal(1, samples.Value("relay_circuits_closed_total", ("route", "test"), ("reason", CloseReasons.UpstreamRefused)));
        Assert.Equal(0, samples.Value("relay_upstream_connect_seconds_count", ("route", "test")));
    }

    [Fact]
    public void Label_values_escape_backslash_quote_and_newline_only()
    {
        var text = new StringBuilder();

        MetricsRoutes.AppendEscaped(text, "a\\b\"c\nd é");

        Assert.Equal("a\\\\b\\\"c\\nd é", text.ToString());
    }
}
