using Relay.Actors;
using Relay.Actors.Configuration;
using Relay.Actors.Logging;
using Relay.Host.Logging;

namespace Relay.Host.Hosting;

/// <summary>
/// Reloads the running node from the config files and flags it started with (SIGHUP and
/// <c>POST /reload</c> both come here). One reload at a time; a bad config is one
/// <c>ReloadRejected</c> line and the running config stays; a good one is one
/// <c>ConfigReloaded</c> line saying what changed.
/// </summary>
public sealed class ConfigReloader
{
    private readonly RelayNode _node;
    private readonly Func<RelaySettings>? _reread;
    private readonly Serilog.ILogger _log;
    private readonly SemaphoreSlim _gate = new(1, 1);

    public ConfigReloader(RelayNode node, Func<RelaySettings>? reread, Serilog.ILogger log)
    {
        _node = node;
        _reread = reread;
        _log = log;
    }

    /// <param name="trigger">What asked for it, for the log: <c>SIGHUP</c> or <c>POST /reload</c>.</param>
    public async Task<ReloadOutcome> ReloadAsync(string trigger)
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            ReloadOutcome outcome;
            if (_reread is null)
            {
                outcome = ReloadOutcome.Rejected("this relay was not started from config files or flags that can be read again");
            }
            else
            {
                try
                {
                    outcome = await _node.ApplyAsync(_reread()).ConfigureAwait(false);
                }
                catch (RelayConfigException e)
                {
                    outcome = ReloadOutcome.Rejected(e.Message);
                }
                catch (Exception e) when (e is TimeoutException or Akka.Actor.AskTimeoutException)
                {
                    outcome = ReloadOutcome.Rejected($"the node did not answer the reload in time: {e.Message}");
                }
            }

            Log(trigger, outcome);
            return outcome;
        }
        finally
        {
            _gate.Release();
        }
    }

    private void Log(string trigger, ReloadOutcome outcome)
    {
        if (!outcome.Applied)
        {
            RelayEvents.ReloadRejected.Log(_log, trigger, outcome.Problem);
            return;
        }

        var changes = outcome.Changes!;
        var restart = outcome.RestartNeeded.Count == 0
            ? ""
            : $"; changes to {string.Join(", ", outcome.RestartNeeded)} need a restart and were not applied";
        RelayEvents.ConfigReloaded.Log(_log, trigger, changes.ToString(), restart);
        if (outcome.RestartNeeded.Count > 0)
        {
            RelayEvents.ReloadNeedsRestart.Log(_log, outcome.RestartNeeded);
        }
    }
}
