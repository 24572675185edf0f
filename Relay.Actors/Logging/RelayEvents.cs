using Akka.Event;

namespace Relay.Actors.Logging;

/// <summary>
/// Every event Relay logs, in one place, as Kestrel keeps its <c>[LoggerMessage]</c> events
/// in <c>SocketsLog</c>: the name operators alert on and query by, the level, and the
/// template whose named holes become the event's properties. docs/OPERATIONS.md lists the
/// same names (a test holds the two to one list), and no template is written anywhere else.
/// </summary>
/// <remarks>
/// An event written from two places with different wording has one entry per wording under
/// the same <see cref="RelayEvent.Name"/>: a query by name finds both. The level of
/// <see cref="CircuitClosed"/> is the only one a call overrides (Debug for a quiet null
/// circuit, see <see cref="RelayEvent.LogAt"/>).
/// </remarks>
public static class RelayEvents
{
    // The node's life: Relay.Host writes these.
    public static readonly RelayEvent RelayStarted = new("RelayStarted", LogLevel.InfoLevel,
        "{EventName:l} relay {Version:l} on {Node}: {RouteCount} route(s) on {Cores} core dispatcher(s), management {Management}");

    public static readonly RelayEvent RelayStartFailed = new("RelayStartFailed", LogLevel.ErrorLevel,
        "{EventName:l} {Problem:l}");

    public static readonly RelayEvent CorePinFailed = new("CorePinFailed", LogLevel.WarningLevel,
        "{EventName:l} {PinFailures} core thread(s) could not be pinned to their CPU and ran unpinned");

    public static readonly RelayEvent RelayStopping = new("RelayStopping", LogLevel.InfoLevel,
        "{EventName:l} relay stopping ({Reason:l}) with {Circuits} live circuit(s); they may finish within {GraceSeconds}s");

    public static readonly RelayEvent RelayStopped = new("RelayStopped", LogLevel.InfoLevel,
        "{EventName:l} relay stopped accepting and {Finished} of {Open} open circuit(s) finished; {Reset} reset ({Why:l}) after {DurationMs} ms");

    public static readonly RelayEvent ConfigReloaded = new("ConfigReloaded", LogLevel.InfoLevel,
        "{EventName:l} config reloaded ({Trigger:l}): {Changes:l}{RestartNote:l}; open circuits keep their settings");

    public static readonly RelayEvent ReloadNeedsRestart = new("ReloadNeedsRestart", LogLevel.WarningLevel,
        "{EventName:l} {Sections} changed in the config but only take effect on a restart");

    public static readonly RelayEvent ReloadRejected = new("ReloadRejected", LogLevel.ErrorLevel,
        "{EventName:l} reload ({Trigger:l}) rejected, the running config stays: {Problem:l}");

    // The management endpoint.
    public static readonly RelayEvent ManagementListening = new("ManagementListening", LogLevel.InfoLevel,
        "{EventName:l} management endpoint on {ManagementAddress}");

    public static readonly RelayEvent ManagementUnauthorized = new("ManagementUnauthorized", LogLevel.WarningLevel,
        "{EventName:l} management {Method} {Path} from {RemoteAddress}: {Problem:l}");

    public static readonly RelayEvent ManagementRequestFailed = new("ManagementRequestFailed", LogLevel.ErrorLevel,
        "{EventName:l} management {Method} {Path} failed");

    public static readonly RelayEvent LogLevelChanged = new("LogLevelChanged", LogLevel.InfoLevel,
        "{EventName:l} log level {From} -> {To}, set from {RemoteAddress}");

    // Listeners and acceptors.
    public static readonly RelayEvent ListenerBound = new("ListenerBound", LogLevel.InfoLevel,
        "{EventName:l} route {Route} listening on {Listen}, relaying to {Upstream}");

    public static readonly RelayEvent ListenerBindFailed = new("ListenerBindFailed", LogLevel.ErrorLevel,
        "{EventName:l} {Problem:l}");

    public static readonly RelayEvent RouteDraining = new("RouteDraining", LogLevel.InfoLevel,
        "{EventName:l} route {Route} stopped accepting on {Listen}; {Active} open circuit(s) run to their end");

    public static readonly RelayEvent RouteHandedOver = new("RouteHandedOver", LogLevel.InfoLevel,
        "{EventName:l} route {Route} handed its socket on {Listen} to its reloaded listener; {Active} open circuit(s) keep their settings");

    public static readonly RelayEvent AcceptPaused = new("AcceptPaused", LogLevel.WarningLevel,
        "{EventName:l} route {Route} cannot accept: {Error}; pending connections wait in the backlog, retrying from {RetryMs} ms up to every {MaxRetryMs} ms");

    public static readonly RelayEvent AcceptResumed = new("AcceptResumed", LogLevel.InfoLevel,
        "{EventName:l} route {Route} accepts again after {PausedMs} ms");

    public static readonly RelayEvent ClientRefused = new("ClientRefused", LogLevel.WarningLevel,
        "{EventName:l} route {Route} refused {Client}: {Reason}; {Suppressed} more refused since the last line");

    public static readonly RelayEvent ProxyHeaderRejected = new("ProxyHeaderRejected", LogLevel.WarningLevel,
        "{EventName:l} route {Route} reset {Peer}: bad PROXY protocol header: {Problem}; {Suppressed} more since the last line");

    // A bug: an actor threw.
    public static readonly RelayEvent ListenerFailed = new("ListenerFailed", LogLevel.ErrorLevel,
        "{EventName:l} a listener failed: {Error}");

    public static readonly RelayEvent AcceptorFailed = new("AcceptorFailed", LogLevel.ErrorLevel,
        "{EventName:l} an acceptor of {Route} failed: {Error}");

    public static readonly RelayEvent CircuitFailed = new("CircuitFailed", LogLevel.ErrorLevel,
        "{EventName:l} a circuit of {Route} failed: {Error}");

    // Circuits. Only CircuitClosed is above Debug: one line per circuit, like HAProxy's.
    public static readonly RelayEvent CircuitOpened = new("CircuitOpened", LogLevel.DebugLevel,
        "{EventName:l} circuit {CircuitId} on {Route} from {Client} to {Upstream}");

    public static readonly RelayEvent UpstreamConnectFailed = new("UpstreamConnectFailed", LogLevel.DebugLevel,
        "{EventName:l} circuit {CircuitId} on {Route}: connect to {Upstream} failed: {Reason} ({Detail:l})");

    public static readonly RelayEvent CircuitEstablished = new("CircuitEstablished", LogLevel.DebugLevel,
        "{EventName:l} circuit {CircuitId} on {Route}: {Client} -> {Upstream} after {ConnectMs} ms");

    public static readonly RelayEvent CircuitHalfClosed = new("CircuitHalfClosed", LogLevel.DebugLevel,
        "{EventName:l} circuit {CircuitId} on {Route}: {Direction} finished, {Remaining} still open");

    public static readonly RelayEvent CircuitClosed = new("CircuitClosed", LogLevel.InfoLevel,
        "{EventName:l} circuit {CircuitId} on {Route} {Client} -> {Upstream}: {Reason}{Detail:l} up={BytesUp} down={BytesDown} in {DurationMs} ms");

    public static readonly RelayEvent CircuitHandedOver = new("CircuitHandedOver", LogLevel.DebugLevel,
        "{EventName:l} circuit {CircuitId} on {Route} {Client} -> {Upstream} handed over to another node after up={BytesUp} down={BytesDown}");

    // Handover of established circuits between nodes.
    public static readonly RelayEvent HandoverStarted = new("HandoverStarted", LogLevel.InfoLevel,
        "{EventName:l} handover {HandoverId} to {Target} ({Trigger}): {Circuits} circuit(s) open");

    public static readonly RelayEvent HandoverCompleted = new("HandoverCompleted", LogLevel.InfoLevel,
        "{EventName:l} handover {HandoverId} to {Target}: {Moved} circuit(s) moved, {Stayed} stayed, {Reset} reset, {BytesMoved} queued bytes moved in {Waves} wave(s), paused {BusyPauseMs:0.0} ms (busy circuits), {PauseMs:0.0} ms (all)");

    public static readonly RelayEvent HandoverRolledBack = new("HandoverRolledBack", LogLevel.WarningLevel,
        "{EventName:l} handover {HandoverId} to {Target} rolled back: {Problem}; {Circuits} circuit(s) go on here");

    public static readonly RelayEvent HandoverFailed = new("HandoverFailed", LogLevel.WarningLevel,
        "{EventName:l} handover with {Target} failed: {Problem}");

    public static readonly RelayEvent HandoverReceived = new("HandoverReceived", LogLevel.InfoLevel,
        "{EventName:l} handover {HandoverId} from {Source}: {Adopted} circuit(s) now run here, {NotAdopted} could not be taken; busy ones ran {BusyLiveMs:0.0} ms after the commit, all {AllLiveMs:0.0} ms");

    public static readonly RelayEvent HandoverChannelFailed = new("HandoverChannelFailed", LogLevel.WarningLevel,
        "{EventName:l} handover {HandoverId}: the state channel failed: {Problem}");

    public static readonly RelayEvent HandoverRehearsed = new("HandoverRehearsed", LogLevel.DebugLevel,
        "{EventName:l} one loopback connection handed over within this process in {ElapsedMs:0.0} ms: the first real handover runs warm");

    public static readonly RelayEvent HandoverRehearsalFailed = new("HandoverRehearsalFailed", LogLevel.WarningLevel,
        "{EventName:l} this node could not hand a loopback connection over to itself, so a real handover would likely fail too: {Problem}");

    public static readonly RelayEvent HandoverUnavailable = new("HandoverUnavailable", LogLevel.WarningLevel,
        "{EventName:l} this node can neither hand circuits over nor take them: {Problem}");

    public static readonly RelayEvent CircuitNotHandedOver = new("CircuitNotHandedOver", LogLevel.WarningLevel,
        "{EventName:l} circuit {CircuitId} on {Route} was not handed over: {Problem}");

    public static readonly RelayEvent StateChannelRejected = new("StateChannelRejected", LogLevel.WarningLevel,
        "{EventName:l} a connection to the handover state channel was refused: {Peer}: {Problem}");

    public static readonly RelayEvent DestinationDenied = new("DestinationDenied", LogLevel.WarningLevel,
        "{EventName:l} circuit {CircuitId} on {Route} from {Client} to {Destination} refused: {Problem}");

    // Upstream pools.
    public static readonly RelayEvent UpstreamUp = new("UpstreamUp", LogLevel.InfoLevel,
        "{EventName:l} route {Route} upstream {Upstream} is up: {Reason}");

    public static readonly RelayEvent UpstreamDown = new("UpstreamDown", LogLevel.WarningLevel,
        "{EventName:l} route {Route} upstream {Upstream} is down: {Reason}");

    // The cluster and its members.
    public static readonly RelayEvent ClusterStarting = new("ClusterStarting", LogLevel.InfoLevel,
        "{EventName:l} {Node} joining the cluster ({Mode}, VIP {Vip})");

    public static readonly RelayEvent ClusterSeedNodesMissing = new("ClusterSeedNodesMissing", LogLevel.WarningLevel,
        "{EventName:l} akka.cluster.seed-nodes is empty: {Node} waits to be joined and stands by");

    public static readonly RelayEvent MemberUp = new("MemberUp", LogLevel.InfoLevel,
        "{EventName:l} {Node} is up ({Members} member(s))");

    public static readonly RelayEvent MemberUnreachable = new("MemberUnreachable", LogLevel.WarningLevel,
        "{EventName:l} {Node} is unreachable");

    public static readonly RelayEvent MemberReachable = new("MemberReachable", LogLevel.InfoLevel,
        "{EventName:l} {Node} is reachable again");

    public static readonly RelayEvent MemberLeaving = new("MemberLeaving", LogLevel.InfoLevel,
        "{EventName:l} {Node} is leaving");

    public static readonly RelayEvent MemberDowningItself = new("MemberDowning", LogLevel.WarningLevel,
        "{EventName:l} {Node} is on the minority side ({Reachable} of {Members} members reachable): downing itself");

    public static readonly RelayEvent MemberDowningUnreachable = new("MemberDowning", LogLevel.WarningLevel,
        "{EventName:l} downing unreachable {Node} ({Reachable} of {Members} members reachable, stable for {StableAfter})");

    public static readonly RelayEvent MemberDowningDeferred = new("MemberDowningDeferred", LogLevel.WarningLevel,
        "{EventName:l} not downing {Node} yet: {Why:l}; the decision waits until that ends");

    public static readonly RelayEvent MemberDowned = new("MemberDowned", LogLevel.WarningLevel,
        "{EventName:l} {Node} was downed");

    public static readonly RelayEvent MemberRemoved = new("MemberRemoved", LogLevel.WarningLevel,
        "{EventName:l} {Node} was removed (was {PreviousStatus})");

    // The service owner and its VIP.
    public static readonly RelayEvent ServiceTakenOver = new("ServiceTakenOver", LogLevel.WarningLevel,
        "{EventName:l} this node owns the service: {RouteCount} route(s) bound{VipText:l} in {TakeOverMs} ms (VIP added after {VipMs} ms)");

    public static readonly RelayEvent ServiceTakeOverFailed = new("ServiceTakeOverFailed", LogLevel.ErrorLevel,
        "{EventName:l} cannot serve as owner: {Problem:l}; retrying in {RetryAfter}");

    public static readonly RelayEvent ServiceReleased = new("ServiceReleased", LogLevel.WarningLevel,
        "{EventName:l} this node handed the service over in {ReleaseMs} ms");

    public static readonly RelayEvent ServiceReleasedOnStop = new("ServiceReleased", LogLevel.WarningLevel,
        "{EventName:l} this node stopped owning the service; VIP removed: {Ok}");

    public static readonly RelayEvent VipAddFailed = new("VipAddFailed", LogLevel.ErrorLevel,
        "{EventName:l} cannot add the VIP {Vip} on {Device}: {Problem:l}; retrying in {RetryAfter}");

    public static readonly RelayEvent VipAnnounceFailed = new("VipAnnounceFailed", LogLevel.WarningLevel,
        "{EventName:l} cannot announce the VIP {Vip} on {Device}: {Problem:l}; neighbours keep sending to the previous owner until their entry for it expires");

    public static readonly RelayEvent VipRemoveFailed = new("VipRemoveFailed", LogLevel.ErrorLevel,
        "{EventName:l} cannot remove the VIP: {Problem:l}");

    // At start a stale VIP left by a killed relay is only a warning: the owner adds it again.
    public static readonly RelayEvent VipRemoveFailedAtStart = new("VipRemoveFailed", LogLevel.WarningLevel,
        "{EventName:l} cannot clear a stale VIP at start: {Problem:l}");

    // The replicated circuit table.
    public static readonly RelayEvent CircuitTableWriteSlow = new("CircuitTableWriteSlow", LogLevel.DebugLevel,
        "{EventName:l} circuit table shard {Key} not yet written to every node");

    public static readonly RelayEvent CircuitLost = new("CircuitLost", LogLevel.WarningLevel,
        "{EventName:l} circuit {CircuitId} on {Route} from {Client} to {Upstream} was lost with node {Node}: {BytesUp} bytes up, {BytesDown} bytes down");

    public static readonly RelayEvent NodeCircuitsLost = new("NodeCircuitsLost", LogLevel.WarningLevel,
        "{EventName:l} node {Node} is gone (was {PreviousStatus}); {Lost} open circuit(s) listed as lost for {Retention}");
}
