using System.Diagnostics;
using System.Net;
using Akka.Actor;
using Relay.Actors.Circuits;
using Relay.Actors.Metrics;

namespace Relay.Tests.Metrics;

public sealed class RouteMetricsTests
{
    [Fact]
    public void Connect_times_land_in_the_first_bucket_whose_bound_they_do_not_exceed()
    {
        var metrics = new RouteMetrics("r");

        metrics.OnUpstreamConnected(Ticks(0.0003));
        metrics.OnUpstreamConnected(Ticks(0.001));
        metrics.OnUpstreamConnected(Ticks(0.2));
        metrics.OnUpstreamConnected(Ticks(30));
        var sample = metrics.Sample(0, 0);

        Assert.Equal(RouteMetrics.ConnectBuckets.Count + 1, sample.ConnectBucketCounts.Count);
        Assert.Equal(1, sample.ConnectBucketCounts[0]); // le 0.0005
        Assert.Equal(2, sample.ConnectBucketCounts[1]); // le 0.001
        Assert.Equal(3, sample.ConnectBucketCounts[RouteMetrics.ConnectBuckets.ToList().IndexOf(0.25)]);
        Assert.Equal(3, sample.ConnectBucketCounts[^2]); // le 5
        Assert.Equal(4, sample.ConnectCount);
        Assert.Equal(30.2013, sample.ConnectSumSeconds, precision: 3);
    }

    [Fact]
    public void Closed_circuits_count_by_reason_including_reasons_outside_the_catalogue()
    {
        var metrics = new RouteMetrics("r");
        metrics.OnCircuitStarted();
        metrics.OnCircuitStarted();
        metrics.OnCircuitStarted();

        metrics.OnCircuitClosed(CloseReasons.Complete, 10, 20);
        metrics.OnCircuitClosed(CloseReasons.UpstreamRefused, 0, 0);
        metrics.OnCircuitClosed("operator-said-so", 1, 2);
        var sample = metrics.Sample(0, 0);

        Assert.Equal(0, sample.Active);
        Assert.Equal(3, sample.Total);
        Assert.Equal(11, sample.BytesUp);
        Assert.Equal(22, sample.BytesDown);
        var byReason = sample.ClosedByReason.ToDictionary(p => p.Key, p => p.Value);
        Assert.Equal(1, byReason[CloseReasons.Complete]);
        Assert.Equal(1, byReason[CloseReasons.UpstreamRefused]);
        Assert.Equal(1, byReason["operator-said-so"]);
        Assert.Equal(0, byReason[CloseReasons.IdleTimeout]);
    }

    [Fact]
    public void Null_circuits_count_as_closed_and_null_but_never_as_errors()
    {
        var metrics = new RouteMetrics("r");
        for (var i = 0; i < 4; i++)
        {
            metrics.OnCircuitStarted();
        }

        metrics.OnCircuitClosed(CloseReasons.ClientReset, 0, 0, isNull: true);
        metrics.OnCircuitClosed(CloseReasons.Complete, 0, 0, isNull: true);
        metrics.OnCircuitClosed(CloseReasons.ClientReset, 5, 0);
        metrics.OnCircuitClosed("operator-said-so", 0, 0);
        var sample = metrics.Sample(0, 0);

        var closed = sample.ClosedByReason.ToDictionary(p => p.Key, p => p.Value);
        var errors = sample.ErrorsByReason.ToDictionary(p => p.Key, p => p.Value);
        Assert.Equal(2, sample.NullCircuits);
        Assert.Equal(2, closed[CloseReasons.ClientReset]);
        Assert.Equal(1, closed[CloseReasons.Complete]);
        Assert.Equal(1, errors[CloseReasons.ClientReset]);
        Assert.Equal(1, errors["operator-said-so"]);
        Assert.DoesNotContain(CloseReasons.Complete, errors.Keys);
        Assert.Equal(closed.Keys.Where(k => k != CloseReasons.Complete), errors.Keys);
    }

    [Fact]
    public void Reported_bytes_never_go_down_when_a_scrape_races_a_circuit_closing()
    {
        var metrics = new RouteMetrics("r");
        metrics.OnCircuitStarted();

        var whileOpen = metrics.Sample(liveUp: 1000, liveDown: 500);
        // The circuit left the table, but its bytes are not yet in the closed totals.
        var inBetween = metrics.Sample(liveUp: 0, liveDown: 0);
        metrics.OnCircuitClosed(CloseReasons.Complete, 1200, 500);
        var afterClose = metrics.Sample(0, 0);

        Assert.Equal(1000, whileOpen.BytesUp);
        Assert.Equal(1000, inBetween.BytesUp);
        Assert.Equal(500, inBetween.BytesDown);
        Assert.Equal(1200, afterClose.BytesUp);
    }

    [Fact]
    public void Collect_adds_the_bytes_of_open_circuits_to_their_route_only()
    {
        var metrics = new RelayMetrics(["b", "a"]);
        var circuits = new CircuitRegistry();
        var entry = new CircuitEntry(1, "a", "node", new IPEndPoint(IPAddress.Loopback, 1), "u:1", 0, ActorRefs.Nobody);
        entry.Counters.AddWritten(upstream: true, 300, Environment.TickCount64);
        circuits.Add(entry);

        var samples = metrics.Collect(circuits);

        Assert.Equal(["a", "b"], samples.Select(s => s.Route));
        Assert.Equal(300, samples[0].BytesUp);
        Assert.Equal(0, samples[1].BytesUp);
    }

    private static long Ticks(double seconds) => (long)(seconds * Stopwatch.Frequency);
}
