using Microsoft.Extensions.Hosting;

namespace Relay.Host.Management.Internal;

/// <summary>
/// INTERNAL API. Replaces the default console lifetime, which would take over Ctrl+C and
/// SIGTERM: the relay host owns shutdown and stops the management server itself.
/// </summary>
internal sealed class DetachedHostLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
