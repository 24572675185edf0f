using Akka.Actor;

namespace Relay.Actors.Internal;

/// <summary>
/// INTERNAL API. Props that create their actor by calling a delegate.
/// <para>
/// <c>Props.Create(() => new X(...))</c> takes an expression tree, and Akka evaluates its
/// arguments by compiling or reflecting over it on every call. Per circuit that is five
/// actors' worth of expression work and JIT: under a <c>Connection: close</c> load perf showed
/// 8.6% of the relay's CPU in the JIT alone. A plain delegate costs one closure.
/// </para>
/// </summary>
internal static class PropsFactory
{
    public static Props Of<TActor>(Func<TActor> create)
        where TActor : ActorBase =>
        Props.CreateBy(new DelegateProducer<TActor>(create));

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
