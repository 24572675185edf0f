using Akka.Configuration;
using Relay.Actors.Configuration;
using Relay.Host.Logging;

namespace Relay.Host.Cli;

/// <summary>
/// <c>relay run</c>, parsed and validated. <paramref name="FullConfig"/> is the layered config
/// (flags over files over the embedded defaults) including any <c>akka.*</c> keys, for the
/// ActorSystem. <paramref name="Reread"/> reads the same files and flags again for a reload
/// (SIGHUP, <c>POST /reload</c>); it throws <see cref="RelayConfigException"/> on a bad config.
/// </summary>
public sealed record RunRequest(RelaySettings Settings, Config FullConfig, LogFormat LogFormat, string? LogFile = null,
    Func<RelaySettings>? Reread = null);

/// <summary><c>relay demo</c>: how long to push traffic and over how many concurrent circuits.</summary>
public sealed record DemoRequest(int Seconds, int Circuits, LogFormat LogFormat);

/// <summary>
/// <c>relay status</c> and <c>relay circuits</c>: the management API to ask, and for
/// <c>circuits</c> the optional filters (null means no filter).
/// </summary>
public sealed record StatusRequest(Uri Management, string? Route, string? State);

/// <summary>
/// <c>relay handover</c>: the management API of the node holding the service, its token
/// (<c>--management-token</c>, else <c>RELAY_MANAGEMENT_TOKEN</c>; null: none), the member to
/// hand to (null: the oldest other member), and whether to print the outcome as the API's JSON.
/// </summary>
public sealed record HandoverRequest(Uri Management, string? Token, string? To, bool Json);

/// <summary>
/// What each command does once its arguments are valid. The host implements these; the
/// CLI only parses, validates and reports usage errors. Each returns the exit code.
/// </summary>
public sealed record RelayCliHandlers(
    Func<RunRequest, CancellationToken, Task<int>> Run,
    Func<DemoRequest, CancellationToken, Task<int>> Demo,
    Func<StatusRequest, CancellationToken, Task<int>> Status,
    Func<StatusRequest, CancellationToken, Task<int>> Circuits,
    Func<HandoverRequest, CancellationToken, Task<int>>? Handover = null);
