using Relay.Actors;
using Relay.Actors.Circuits;

namespace Relay.Host.Management;

/// <summary>
/// What the management routes may see of the running node. Later parts (cluster, routes,
/// metrics, log level) add their members here, so route files take one argument.
/// </summary>
/// <param name="Circuits">The node's live circuit table.</param>
/// <param name="IsReady">Listeners bound, or a healthy standby: what <c>GET /health/ready</c> reports.</param>
/// <param name="NodeAddress">This node's Akka address, as circuits name their node.</param>
/// <param name="Log">Where the management server and ASP.NET Core log.</param>
/// <param name="Token">Bearer token for mutating routes; empty means read-only.</param>
/// <param name="Node">
/// The running relay (metrics, routes, drain, log level). Null only for a server that shows
/// a bare circuit table; the routes that need the node then answer 503.
/// </param>
/// <param name="Reload">Re-reads the config and applies it (<c>POST /reload</c>); the argument names the trigger. Null: 503.</param>
public sealed record ManagementContext(
    CircuitRegistry Circuits,
    Func<bool> IsReady,
    string NodeAddress,
    Serilog.ILogger Log,
    string Token,
    RelayNode? Node = null,
    Func<string, Task<ReloadOutcome>>? Reload = null);
