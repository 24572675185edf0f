using System.Net;
using Akka.Actor;
using Relay.Actors.Configuration;
using Relay.Actors.Listening.Admission;
using Relay.Tests.Support;

namespace Relay.Tests.Listening;

/// <summary>
/// The admission decisions without sockets: address normalisation, the two-step admission of
/// accept-proxy-protocol routes, and counts that stay exact under concurrent acceptors.
/// </summary>
public sealed class RouteAdmissionTests : IDisposable
{
    private readonly ActorSystem _system = ActorSystem.Create("route-admission-tests");

    public void Dispose() => _system.Dispose();

    private RouteAdmission Admission(AccessList? access = null, LimitSettings? limits = null, LimitSettings? node = null)
    {
        var admission = NodeAdmission.For(_system);
        admission.Apply(node ?? LimitSettings.None);
        return admission.ForRoute(TestSettings.Route(new IPEndPoint(IPAddress.Loopback, 9)) with
        {
            Access = access ?? AccessList.Open,
            Limits = limits ?? LimitSettings.None,
        });
    }

    [Fact]
    public void An_ipv4_client_of_a_dual_stack_listener_is_matched_as_ipv4()
    {
        var admission = Admission(AdmissionTests.Access(allow: ["127.0.0.0/8"], deny: ["127.0.0.3"]));

        Assert.NotNull(admission.TryAdmit(IPAddress.Parse("::ffff:127.0.0.2"), out _));
        Assert.Null(admission.TryAdmit(IPAddress.Parse("::ffff:127.0.0.3"), out var denied));
        Assert.Equal(RefusalReasons.Denied, denied);
        Assert.Null(admission.TryAdmit(IPAddress.IPv6Loopback, out var notAllowed));
        Assert.Equal(RefusalReasons.NotAllowed, notAllowed);
    }

    [Fact]
    public void A_ticket_taken_before_the_client_is_known_is_released_whole_when_the_source_is_refused()
    {
        var admission = Admission(AdmissionTests.Access(deny: ["198.18.0.9"]), new LimitSettings(10, 1, null), new LimitSettings(10, null, null));
        var node = NodeAdmission.For(_system);

        var ticket = admission.TryAdmit(null, out _)!; // step one at accept: counts only
        Assert.Equal(1, admission.Active);
        Assert.Equal(1, node.Active);

        Assert.False(admission.TryAdmitSource(ticket, IPAddress.Parse("198.18.0.9"), out var reason));
        Assert.Equal(RefusalReasons.Denied, reason);
        Assert.Equal(0, admission.Active);
        Assert.Equal(0, node.Active);

        var second = admission.TryAdmit(null, out _)!;
        Assert.True(admission.TryAdmitSource(second, IPAddress.Parse("198.18.0.1"), out _));
        Assert.Equal(1, admission.OpenFrom(IPAddress.Parse("198.18.0.1")));
        var third = admission.TryAdmit(null, out _)!;
        Assert.False(admission.TryAdmitSource(third, IPAddress.Parse("198.18.0.1"), out reason));
        Assert.Equal(RefusalReasons.MaxCircuitsPerSource, reason);
        Assert.Equal(1, admission.Active);

        second.Release();
        second.Release(); // idempotent
        Assert.Equal(0, admission.Active);
        Assert.Equal(0, admission.TrackedSources);
    }

    [Fact]
    public void Node_limits_refuse_with_their_own_reasons_and_give_back_what_the_route_took()
    {
        var admission = Admission(limits: new LimitSettings(null, null, null), node: new LimitSettings(1, 1, null));
        var held = admission.TryAdmit(IPAddress.Parse("198.18.0.1"), out _)!;

        Assert.Null(admission.TryAdmit(IPAddress.Parse("198.18.0.2"), out var reason));
        Assert.Equal(RefusalReasons.NodeMaxCircuits, reason);
        Assert.Equal(1, admission.Active);

        NodeAdmission.For(_system).Apply(new LimitSettings(5, 1, null));
        Assert.Null(admission.TryAdmit(IPAddress.Parse("198.18.0.1"), out reason));
        Assert.Equal(RefusalReasons.NodeMaxCircuitsPerSource, reason);
        Assert.Equal(1, admission.Active);
        held.Release();
        Assert.Equal(0, NodeAdmission.For(_system).Active);
    }

    [Fact]
    public async Task Counts_stay_exact_when_every_core_admits_and_releases_at_once()
    {
        const int perSource = 3;
        var admission = Admission(limits: new LimitSettings(50, perSource, null), node: new LimitSettings(null, 10, null));
        var sources = Enumerable.Range(1, 4).Select(i => IPAddress.Parse($"198.18.0.{i}")).ToArray();
        var over = 0;

        var workers = Enumerable.Range(0, 8).Select(worker => Task.Run(() =>
        {
            var random = new Random(worker);
            var held = new List<(AdmissionTicket Ticket, IPAddress Source)>();
            for (var i = 0; i < 20_000; i++)
            {
                if (held.Count > 0 && random.Next(2) == 0)
                {
                    var at = random.Next(held.Count);
                    held[at].Ticket.Release();
                    held.RemoveAt(at);
                    continue;
                }

                var source = sources[random.Next(sources.Length)];
                if (admission.TryAdmit(source, out _) is { } ticket)
                {
                    held.Add((ticket, source));
                    if (admission.OpenFrom(source) > perSource || admission.Active > 50)
                    {
                        Interlocked.Increment(ref over);
                    }
                }
            }

            held.ForEach(h => h.Ticket.Release());
        })).ToArray();
        await Task.WhenAll(workers);

        Assert.Equal(0, over);
        Assert.Equal(0, admission.Active);
        Assert.Equal(0, admission.TrackedSources);
        Assert.Equal(0, NodeAdmission.For(_system).Active);
        Assert.Equal(0, NodeAdmission.For(_system).TrackedSources);
    }

    [Fact]
    public void A_rate_limiter_allows_its_burst_then_one_token_per_interval()
    {
        var limiter = new RateLimiter(ratePerSecond: 10, burst: 10);
        var now = System.Diagnostics.Stopwatch.Frequency * 100;
        var taken = Enumerable.Range(0, 20).Count(_ => limiter.TryTake(now));
        Assert.Equal(10, taken);

        Assert.False(limiter.TryTake(now + (System.Diagnostics.Stopwatch.Frequency / 20)));  // 50 ms: no token yet
        Assert.True(limiter.TryTake(now + (System.Diagnostics.Stopwatch.Frequency / 10)));   // 100 ms: one
        Assert.False(limiter.TryTake(now + (System.Diagnostics.Stopwatch.Frequency / 10)));

        limiter.GiveBack();
        Assert.True(limiter.TryTake(now + (System.Diagnostics.Stopwatch.Frequency / 10)));
    }
}
