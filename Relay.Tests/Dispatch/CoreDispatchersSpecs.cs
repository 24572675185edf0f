using Akka.Actor;
using Akka.Configuration;
using Relay.Actors.Configuration;
using Relay.Actors.Dispatch;

namespace Relay.Tests.Dispatch;

public sealed class CoreDispatchersSpecs : Akka.TestKit.Xunit2.TestKit
{
    public CoreDispatchersSpecs()
        : base(CoreDispatchers.CreateConfig(new DispatcherSettings(2, true, 64)))
    {
    }

    [Fact]
    public void Each_core_dispatcher_runs_on_its_own_OS_thread_pinned_to_exactly_its_cpu()
    {
        var allowed = ThreadAffinity.ProcessCpus();
        var core0 = WhereAmIOn(0);
        var core1 = WhereAmIOn(1);

        Assert.NotEqual(core0.OsThreadId, core1.OsThreadId);
        Assert.Equal("relay-core-0", core0.ThreadName);
        Assert.Equal("relay-core-1", core1.ThreadName);
        Assert.Equal(new[] { allowed[0] }, core0.Cpus);
        Assert.Equal(new[] { allowed[1 % allowed.Count] }, core1.Cpus);
        if (allowed.Count > 1)
        {
            Assert.NotEqual(core0.Cpus, core1.Cpus);
        }
    }

    [Fact]
    public void Many_actors_on_one_core_dispatcher_all_run_on_the_same_thread()
    {
        var reports = Enumerable.Range(0, 20).Select(_ => WhereAmIOn(1)).ToList();

        Assert.Single(reports.Select(report => report.OsThreadId).Distinct());
        Assert.All(reports, report => Assert.Equal("relay-core-1", report.ThreadName));
        Assert.All(reports, report => Assert.Single(report.Cpus));
    }

    [Fact]
    public void Started_core_threads_report_their_pin()
    {
        WhereAmIOn(0);
        WhereAmIOn(1);

        var statuses = CoreDispatchers.ThreadStatuses();
        foreach (var core in new[] { 0, 1 })
        {
            var status = Assert.Single(statuses, s => s.DispatcherId == CoreDispatchers.IdFor(core));
            Assert.True(status.PinRequested);
            Assert.True(status.Pinned, $"core {core}: pin failed with errno {status.PinErrno}");
            Assert.Equal(new[] { status.Cpu }, status.Cpus);
        }
    }

    [Fact]
    public void Config_assigns_cpus_from_the_allowed_set_in_order_and_wraps_round()
    {
        var allowed = ThreadAffinity.ProcessCpus();
        var config = CoreDispatchers.CreateConfig(new DispatcherSettings(allowed.Count + 1, false, 10));

        for (var core = 0; core <= allowed.Count; core++)
        {
            var dispatcher = config.GetConfig(CoreDispatchers.IdFor(core));
            Assert.Equal(allowed[core % allowed.Count], dispatcher.GetInt("cpu"));
            Assert.False(dispatcher.GetBoolean("pin"));
            Assert.Equal(10, dispatcher.GetInt("throughput"));
            Assert.Equal("Dispatcher", dispatcher.GetString("type"));
        }
    }

    [Fact]
    public void Hundred_thousand_ping_pongs_between_two_actors_on_one_core_complete()
    {
        const int RoundTrips = 100_000;
        var ponger = Sys.ActorOf(Props.Create(() => new Ponger()).WithDispatcher(CoreDispatchers.IdFor(0)));
        var pinger = Sys.ActorOf(Props.Create(() => new Pinger(ponger, RoundTrips, TestActor)).WithDispatcher(CoreDispatchers.IdFor(0)));

        pinger.Tell(Pinger.Start.Instance);

        ExpectMsg<Pinger.Done>(TimeSpan.FromSeconds(60)).Deconstruct(out var count, out var threads);
        Assert.Equal(RoundTrips, count);
        Assert.Equal(1, threads);
    }

    private WhereAmI.Report WhereAmIOn(int core)
    {
        var actor = Sys.ActorOf(Props.Create(() => new WhereAmI()).WithDispatcher(CoreDispatchers.IdFor(core)));
        actor.Tell(WhereAmI.Ask.Instance);
        return ExpectMsg<WhereAmI.Report>(TimeSpan.FromSeconds(10));
    }

    private sealed class WhereAmI : ReceiveActor
    {
        public WhereAmI()
        {
            Receive<Ask>(_ => Sender.Tell(new Report(
                ThreadAffinity.CurrentThreadId(),
                ThreadAffinity.CurrentThreadCpus(),
                Thread.CurrentThread.Name)));
        }

        public sealed record Ask
        {
            public static readonly Ask Instance = new();
        }

        public sealed record Report(int OsThreadId, IReadOnlyList<int> Cpus, string? ThreadName);
    }

    private sealed class Ponger : ReceiveActor
    {
        public Ponger()
        {
            Receive<int>(n => Sender.Tell(n));
        }
    }

    private sealed class Pinger : ReceiveActor
    {
        private readonly HashSet<int> _threads = new();

        public Pinger(IActorRef ponger, int roundTrips, IActorRef report)
        {
            Receive<Start>(_ => ponger.Tell(1));
            Receive<int>(n =>
            {
                _threads.Add(Environment.CurrentManagedThreadId);
                if (n == roundTrips)
                {
                    report.Tell(new Done(n, _threads.Count));
                }
                else
                {
                    ponger.Tell(n + 1);
                }
            });
        }

        public sealed record Start
        {
            public static readonly Start Instance = new();
        }

        public sealed record Done(int Count, int Threads);
    }
}
