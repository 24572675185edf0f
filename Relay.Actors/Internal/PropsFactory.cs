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
        where TActor : ActorBase
    {
        var producer = new DelegateProducer<TActor>(create);
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
}
