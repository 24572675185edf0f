using Relay.Actors.Configuration;
using Relay.Actors.Upstreams;

namespace Relay.Tests.Upstreams;

/// <summary>The pool's choices and health state machine, on an injected clock.</summary>
public sealed class UpstreamPoolTests
{
    private long _now = 1_000;

    private UpstreamPool Pool(int members, BalanceMode balance = BalanceMode.RoundRobin, int fall = 3) =>
        new("test",
            new UpstreamPoolSettings(
                Enumerable.Range(0, members).Select(i => new UpstreamAddress("127.0.0.1", 1000 + i)).ToList(),
                balance,
                new PassiveHealthSettings(fall, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(10)),
                UpstreamPoolSettings.DefaultHealthCheck),
            nowMs: () => _now);

    [Fact]
    public void Round_robin_takes_each_member_in_turn()
    {
        var pool = Pool(3);
        var picks = Enumerable.Range(0, 9).Select(_ => pool.Pick(0)).ToList();
        Assert.Equal([0, 1, 2, 0, 1, 2, 0, 1, 2], picks);
    }

    [Fact]
    public void A_circuit_never_gets_a_member_it_already_tried_and_gets_minus_one_when_all_are_tried()
    {
        var pool = Pool(3);
        ulong tried = 0;
        var seen = new List<int>();
        for (var i = 0; i < 3; i++)
        {
            var member = pool.Pick(tried);
            seen.Add(member);
            tried |= 1UL << member;
        }

        Assert.Equal([0, 1, 2], seen.Order());
        Assert.Equal(-1, pool.Pick(tried));
    }

    [Fact]
    public void Least_circuits_prefers_the_member_with_fewest_open_circuits()
    {
        var pool = Pool(3, BalanceMode.LeastCircuits);
        var a = pool.Pick(0);
        var b = pool.Pick(0);
        var c = pool.Pick(0);
        Assert.Equal([0, 1, 2], new[] { a, b, c }.Order());

        pool.Release(b); // b's circuit ended: b is now the least loaded
        Assert.Equal(b, pool.Pick(0));
        pool.Release(a);
        pool.Release(c);
        Assert.Contains(pool.Pick(0), new[] { a, c });
    }

    [Fact]
    public void Fall_failures_in_a_row_eject_a_member_and_a_success_between_resets_the_count()
    {
        var pool = Pool(2, fall: 3);
        pool.OnConnectFailed(0, "upstream-refused");
        pool.OnConnectFailed(0, "upstream-refused");
        pool.OnConnected(0);
        pool.OnConnectFailed(0, "upstream-refused");
        pool.OnConnectFailed(0, "upstream-refused");
        Assert.True(pool.Members[0].IsUp);

        pool.OnConnectFailed(0, "upstream-refused");
        Assert.False(pool.Members[0].IsUp);
        Assert.Contains("3 connect failures in a row", pool.Members[0].LastProblem);
        Assert.Equal(5, pool.Members[0].ConnectFailures);
        Assert.All(Enumerable.Range(0, 6).Select(_ => pool.Pick(0)), m => Assert.Equal(1, m));
    }

    [Fact]
    public void An_ejected_member_gets_one_trial_after_its_backoff_and_a_failed_trial_doubles_the_backoff()
    {
        var pool = Pool(2, fall: 1);
        pool.OnConnectFailed(0, "upstream-refused"); // ejected for 2s
        _now += 1_999;
        Assert.Equal(1, pool.Pick(0));
        Assert.Equal(1, pool.Pick(0));

        _now += 1;
        var picks = Enumerable.Range(0, 4).Select(_ => pool.Pick(0)).ToList();
        Assert.Equal(1, picks.Count(m => m == 0)); // exactly one circuit tries it
        pool.OnConnectFailed(0, "upstream-refused");
        Assert.False(pool.Members[0].IsUp);

        _now += 3_999; // the second back-off is 4s
        Assert.DoesNotContain(0, Enumerable.Range(0, 4).Select(_ => pool.Pick(0)));
        _now += 1;
        Assert.Contains(0, Enumerable.Range(0, 4).Select(_ => pool.Pick(0)));
        pool.OnConnected(0);
        Assert.True(pool.Members[0].IsUp);
        Assert.Equal(TimeSpan.FromSeconds(10), pool.Backoff(10)); // capped at max-backoff
    }

    [Fact]
    public void When_every_member_is_down_circuits_still_try_them_in_turn()
    {
        var pool = Pool(2, fall: 1);
        pool.OnConnectFailed(0, "upstream-refused");
        pool.OnConnectFailed(1, "upstream-refused");
        var first = pool.Pick(0);
        Assert.InRange(first, 0, 1);
        Assert.Equal(1 - first, pool.Pick(1UL << first));
    }

    [Fact]
    public void A_down_health_check_takes_a_member_out_and_a_good_one_ends_a_passive_ejection()
    {
        var pool = Pool(2, fall: 1);
        pool.OnHealthCheck(1, up: false, "3 failed health checks");
        Assert.False(pool.Members[1].IsUp);
        Assert.All(Enumerable.Range(0, 4).Select(_ => pool.Pick(0)), m => Assert.Equal(0, m));

        pool.OnConnectFailed(0, "upstream-refused");
        pool.OnHealthCheck(0, up: true, "2 good health checks");
        Assert.True(pool.Members[0].IsUp);
    }
}
