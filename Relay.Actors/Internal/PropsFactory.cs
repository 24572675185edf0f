using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Akka.Actor;

namespace Relay.Actors.Internal;

/// <summary>
/// INTERNAL API. Props that create their actor by calling a delegate.
/// <para>
/// <c>Props.Create(() => new X(...))</c> takes an expression tree, and Akka evaluates its
/// arguments by compiling or reflecting over it on every call, once per actor of every
/// circuit: under a <c>Connection: close</c> load perf showed 8.6% of the relay's CPU in the
/// JIT alone. A plain delegate costs one closure.
/// </para>
/// <para>
/// <see cref="Of{TActor}(Func{TActor}, string)"/> also names the dispatcher without
/// <see cref="Props.WithDispatcher"/>: that copies the Props and makes a new
/// <see cref="Deploy"/>, and every Deploy constructor parses an empty HOCON document
/// (<c>ConfigurationFactory.Empty</c> is a property that parses ""): one parse per actor of
/// every circuit, 8.5% of the relay's allocations under <c>Connection: close</c> load
/// (dotnet-trace, gc-verbose). One Deploy per dispatcher is made once and shared; Deploy is
/// immutable.
/// </para>
/// </summary>
internal static class PropsFactory
{
    private static readonly ConcurrentDictionary<string, Deploy> DeployByDispatcher = new();
    private static volatile bool s_internalConstructorMissing;

    public static Props Of<TActor>(Func<TActor> create)
        where TActor : ActorBase =>
        Props.CreateBy(new DelegateProducer<TActor>(create));

    /// <summary>Props for <paramref name="create"/> on the dispatcher <paramref name="dispatcher"/>.</summary>
    public static Props Of<TActor>(Func<TActor> create, string dispatcher)
        where TActor : ActorBase =>
        WithProducer(new DelegateProducer<TActor>(create), dispatcher);

    /// <summary>
    /// Props whose one actor is made by <paramref name="create"/> from <paramref name="args"/>,
    /// on <paramref name="dispatcher"/> (null: the caller's default).
    /// <para>
    /// For the actors made per circuit: one producer object holds the arguments (a value tuple
    /// for several, inline in it) where a lambda costs a closure, a <see cref="Func{TResult}"/>
    /// and a producer around it, 176 B per circuit in the idle-memory measurement
    /// (ops/bench/idle-heap.md). <paramref name="create"/> should be a static lambda, which
    /// the compiler allocates once.
    /// </para>
    /// <para>
    /// The producer lets go of <paramref name="args"/> once the actor is made: the cell keeps
    /// its Props for its whole life, and a circuit's actors, parked and serving later circuits,
    /// would otherwise keep their first circuit's sockets and entry reachable. A second actor
    /// from the same Props (a restart: circuits are stopped on failure, never restarted) is
    /// refused.
    /// </para>
    /// </summary>
    public static Props Once<TActor, TArgs>(TArgs args, Func<TArgs, TActor> create, string? dispatcher)
        where TActor : ActorBase
    {
        var producer = new OnceProducer<TActor, TArgs>(args, create);
        return dispatcher is null ? Props.CreateBy(producer) : WithProducer(producer, dispatcher);
    }

    /// <summary>
    /// One Props per dispatcher for the actors <paramref name="create"/> makes, shared by all of
    /// them: made once, kept for the process's life. For an actor made per circuit whose circuit
    /// comes as a message: the Props and its producer (the cell keeps both for its life, 104 B
    /// per reader) are then no cost per circuit. <paramref name="create"/> must be a static
    /// lambda, the same at every call for a <typeparamref name="TActor"/>.
    /// </summary>
    public static Props Shared<TActor>(Func<TActor> create, string dispatcher)
        where TActor : ActorBase =>
        SharedProps<TActor>.ByDispatcher.GetOrAdd(dispatcher, static (id, make) => Of(make, id), create);

    private static class SharedProps<TActor>
        where TActor : ActorBase
    {
        public static readonly ConcurrentDictionary<string, Props> ByDispatcher = new();
    }

    private static Props WithProducer(IIndirectActorProducer producer, string dispatcher)
    {
        if (!s_internalConstructorMissing)
        {
            try
            {
                return NewProps(producer, DeployFor(dispatcher), []);
            }
            catch (Exception e) when (e is MissingMemberException or MissingMethodException)
            {
                // An Akka without that constructor: the public way, for good.
                s_internalConstructorMissing = true;
            }
        }

        return Props.CreateBy(producer).WithDispatcher(dispatcher);
    }

    private static Deploy DeployFor(string dispatcher) =>
        DeployByDispatcher.GetOrAdd(dispatcher, static id => new Deploy().WithDispatcher(id));

    // Props(IIndirectActorProducer producer, Deploy deploy, params object[] args): what
    // Props.CreateBy calls with its default Deploy.
    [UnsafeAccessor(UnsafeAccessorKind.Constructor)]
    private static extern Props NewProps(IIndirectActorProducer producer, Deploy deploy, object[] args);

    private sealed class DelegateProducer<TActor>(Func<TActor> create) : IIndirectActorProducer
        where TActor : ActorBase
    {
        public Type ActorType => typeof(TActor);

        public ActorBase Produce() => create();

        public void Release(ActorBase actor)
        {
        }
    }

    private sealed class OnceProducer<TActor, TArgs>(TArgs args, Func<TArgs, TActor> create) : IIndirectActorProducer
        where TActor : ActorBase
    {
        private TArgs _args = args;
        private int _made;

        public Type ActorType => typeof(TActor);

        public ActorBase Produce()
        {
            if (Interlocked.Exchange(ref _made, 1) != 0)
            {
                throw new InvalidOperationException(
                    $"{typeof(TActor).Name} props make one actor: it is stopped on failure, never restarted or made twice");
            }

            var taken = _args;
            _args = default!;
            return create(taken);
        }

        public void Release(ActorBase actor)
        {
        }
    }
}
