using Akka.Configuration;
using Akka.Dispatch;
using Akka.Event;

namespace Relay.Actors.Dispatch.Internal;

/// <summary>
/// INTERNAL API. Named by type in a dispatcher's <c>executor</c> key (see
/// <see cref="CoreDispatchers.CreateConfig"/>); Akka creates it by reflection with the
/// dispatcher's config, which is why it is public. Reads <c>core</c>, <c>cpu</c>, <c>pin</c>
/// and <c>spin-iterations</c> from that config.
/// </summary>
public sealed class CoreThreadExecutorConfigurator : ExecutorServiceConfigurator
{
    private readonly int _core;
    private readonly int _cpu;
    private readonly bool _pin;
    private readonly int _spinIterations;

    public CoreThreadExecutorConfigurator(Config config, IDispatcherPrerequisites prerequisites)
        : base(config, prerequisites)
    {
        var id = config.GetString("id", "unknown");
        _core = config.GetInt("core", -1);
        _cpu = config.GetInt("cpu", -1);
        _pin = config.GetBoolean("pin", false);
        _spinIterations = config.GetInt("spin-iterations", CoreDispatchers.DefaultSpinIterations);
        if (_core < 0 || _cpu < 0 || _spinIterations < 0)
        {
            throw new ConfigurationException(
                $"Dispatcher {id} needs core >= 0, cpu >= 0 and spin-iterations >= 0 (got core = {_core}, cpu = {_cpu}, spin-iterations = {_spinIterations}).");
        }
    }

    public override ExecutorService Produce(string id)
    {
        var options = new CoreThreadOptions(
            CoreDispatchers.ThreadNameFor(_core),
            _spinIterations,
            () => CoreDispatchers.InitializeCurrentThread(id, _core, _cpu, _pin));
        var eventStream = Prerequisites.EventStream;
        return new CoreThreadExecutor(
            id,
            options,
            e => eventStream.Publish(new Error(e, id, typeof(CoreThreadExecutor), "A runnable on " + id + " threw; the core thread carries on.")));
    }
}
