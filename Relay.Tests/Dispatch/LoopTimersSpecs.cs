using Akka.Actor;
using Akka.Configuration;
using Relay.Actors.Configuration;
using Relay.Actors.Dispatch;

namespace Relay.Tests.Dispatch;

/// <summary>The core thread's timer heap, on a hand-driven clock: no sleeping.</summary>
public sealed class LoopTimersSpecs : Akka.TestKit.Xunit2.TestKit
{
    private long _now = 1_000;

    public LoopTimersSpecs()
        : base(ConfigurationFactory.ParseString("akka.loglevel = WARNING"), "loop-timers-specs")
    {
    }

    [Fact]
    public void Timers_fire_in_due_order_once_their_time_has_come_and_not_before()
    {
        var timers = new LoopTimers(() => _now);
        timers.ScheduleTellOnce(TimeSpan.FromMilliseconds(30), TestActor, "c");
        timers.ScheduleTellOnce(TimeSpan.FromMilliseconds(10), TestActor, "a");
        timers.ScheduleTellOnce(TimeSpan.FromMilliseconds(20), TestActor, "b");

        Assert.Equal(10, timers.MillisUntilNext());
        Assert.Equal(0, timers.FireDue());
        ExpectNoMsg(TimeSpan.FromMilliseconds(50));

        _now += 25;
        Assert.Equal(0, timers.MillisUntilNext());
        Assert.Equal(2, timers.FireDue());
        ExpectMsg("a");
        ExpectMsg("b");
        Assert.Equal(5, timers.MillisUntilNext());

        _now += 5;
        Assert.Equal(1, timers.FireDue());
        ExpectMsg("c");
        Assert.Equal(-1, timers.MillisUntilNext());
        Assert.Equal(0, timers.Count);
    }

    [Fact]
    public void A_cancelled_timer_never_fires_and_a_rearmed_one_fires_once_at_its_new_time()
    {
        var timers = new LoopTimers(() => _now);
        var cancelled = timers.ScheduleTellOnce(TimeSpan.FromMilliseconds(10), TestActor, "cancelled");
        var rearmed = timers.ScheduleTellOnce(TimeSpan.FromMilliseconds(10), TestActor, "rearmed");
        timers.ScheduleTellOnce(TimeSpan.FromMilliseconds(15), TestActor, "other");

        cancelled.Cancel();
        cancelled.Cancel();
        rearmed.Start(TimeSpan.FromMilliseconds(40));
        Assert.False(cancelled.IsArmed);
        Assert.True(rearmed.IsArmed);
        Assert.Equal(2, timers.Count);

        _now += 20;
        timers.FireDue();
        ExpectMsg("other");
        ExpectNoMsg(TimeSpan.FromMilliseconds(50));

        _now += 20;
        timers.FireDue();
        ExpectMsg("rearmed");
        Assert.False(rearmed.IsArmed);
        _now += 100;
        Assert.Equal(0, timers.FireDue());
        ExpectNoMsg(TimeSpan.FromMilliseconds(50));
    }

    [Fact]
    public void The_heap_agrees_with_a_sorted_list_over_random_arms_rearms_and_cancels()
    {
        var random = new Random(1234);
        var timers = new LoopTimers(() => _now);
        var probe = CreateTestProbe();
        var live = new Dictionary<int, (LoopTimer Timer, long Due)>();
        var all = new List<LoopTimer>();
        for (var step = 0; step < 5_000; step++)
        {
            var action = random.Next(4);
            if (action == 0 || all.Count == 0)
            {
                var delay = random.Next(0, 500);
                var id = all.Count;
                all.Add(timers.ScheduleTellOnce(TimeSpan.FromMilliseconds(delay), probe, id));
                live[id] = (all[id], _now + delay);
            }
            else if (action == 1)
            {
                var id = random.Next(all.Count);
                var delay = random.Next(0, 500);
                all[id].Start(TimeSpan.FromMilliseconds(delay));
                live[id] = (all[id], _now + delay);
            }
            else if (action == 2)
            {
                var id = random.Next(all.Count);
                all[id].Cancel();
                live.Remove(id);
            }
            else
            {
                _now += random.Next(0, 50);
                var due = live.Where(kv => kv.Value.Due <= _now).Select(kv => kv.Key).ToHashSet();
                Assert.Equal(due.Count, timers.FireDue());
                var fired = probe.ReceiveN(due.Count, TimeSpan.FromSeconds(5)).Cast<int>().ToHashSet();
                Assert.Equal(due, fired);
                foreach (var id in due)
                {
                    live.Remove(id);
                }
            }

            Assert.Equal(live.Count, timers.Count);
            var expected = live.Count == 0 ? -1 : (int)Math.Max(0, live.Values.Min(v => v.Due) - _now);
            Assert.Equal(expected, timers.MillisUntilNext());
        }
    }
}

/// <summary>Timers and tells on a real core thread: its own work never wakes it through the eventfd.</summary>
public sealed class CoreLoopWakeSpecs : Akka.TestKit.Xunit2.TestKit
{
    private static readonly Config SystemConfig = ConfigurationFactory.ParseString("akka.loglevel = WARNING")
        .WithFallback(CoreDispatchers.CreateConfig(new DispatcherSettings(1, false, 64)));

    public CoreLoopWakeSpecs()
        : base(SystemConfig, "core-loop-wake-specs")
    {
    }

    [Fact]
    public void A_chain_of_loop_timers_runs_on_the_core_thread_without_writing_the_wake_eventfd()
    {
        // Each timer fires from the loop's dispatch and its tell lands on the same thread.
        // Before the executor marked itself awake ahead of dispatching, every such tell
        // wrote the eventfd (one wake per firing); now only the test's own two tells from
        // outside may.
        var chain = Sys.ActorOf(Props.Create(() => new TimerChain()).WithDispatcher(CoreDispatchers.IdFor(0)));
        chain.Tell(TimerChain.Start.Instance);
        var result = ExpectMsg<TimerChain.Done>(TimeSpan.FromSeconds(20));

        Assert.Equal(TimerChain.Rounds, result.Fired);
        Assert.True(result.Wakes <= 2, $"the core's eventfd was written {result.Wakes} times during {TimerChain.Rounds} on-thread timer firings");
    }

    private sealed class TimerChain : UntypedActor
    {
        public const int Rounds = 50;
        private IActorRef? _replyTo;
        private int _fired;
        private long _wakesAtStart;

        protected override void OnReceive(object message)
        {
            var loop = CoreEventLoop.Require();
            switch (message)
            {
                case Start:
                    _replyTo = Sender;
                    _wakesAtStart = loop.Wakes;
                    loop.Timers.ScheduleTellOnce(TimeSpan.FromMilliseconds(2), Self, Tick.Instance);
                    break;
                case Tick when ++_fired < Rounds:
                    loop.Timers.ScheduleTellOnce(TimeSpan.FromMilliseconds(2), Self, Tick.Instance);
                    break;
                case Tick:
                    _replyTo!.Tell(new Done(_fired, loop.Wakes - _wakesAtStart));
                    break;
            }
        }

        public sealed class Start
        {
            public static readonly Start Instance = new();
        }

        private sealed class Tick
        {
            public static readonly Tick Instance = new();
        }

        public sealed record Done(int Fired, long Wakes);
    }
}
