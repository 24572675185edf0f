namespace Relay.Actors.Handover;

/// <summary>
/// What the handover coordinators (<c>/user/handover</c> on every clustered node) say to each
/// other over Akka.Remote, and what a caller on the node asks of its own. Only the small
/// control messages travel this way; the circuits themselves go over a
/// <see cref="StateChannel"/> that the target offers for one handover.
/// </summary>
public static class HandoverProtocol
{
    /// <summary>
    /// Hand every movable circuit, with the service and egress addresses, to
    /// <paramref name="Target"/> (a member's address, <c>akka.tcp://relay@host:port</c>, or its
    /// host), or to the standby when null. <paramref name="Trigger"/> says why, for the log
    /// (<c>request</c>, <c>shutdown</c>). Answered with <see cref="Outcome"/>.
    /// </summary>
    public sealed record Start(string? Target, string Trigger);

    /// <summary>How a handover ended, as <c>POST /cluster/handover</c> reports it.</summary>
    /// <param name="Result"><c>completed</c>, <c>rolled-back</c> (every circuit goes on here) or <c>failed</c> (nothing was frozen).</param>
    /// <param name="Moved">Circuits now running on the target.</param>
    /// <param name="Stayed">Circuits that were not moved and run on here (connecting, or not movable).</param>
    /// <param name="Reset">Circuits lost in the move (a dump or restore failed for them).</param>
    /// <param name="BytesMoved">Bytes of queues and buffers carried over.</param>
    /// <param name="PauseMs">From the first freeze to the target's last word (every circuit restored and adopted): the longest any moved circuit stood still.</param>
    public sealed record Outcome(string Result, string Detail, string? Target, int Moved, int Stayed, int Reset, long BytesMoved, double PauseMs)
    {
        public bool Completed => Result == Results.Completed;

        /// <summary>Where the pause went, for a handover that froze circuits; null when it stopped before.</summary>
        public Phases? Timings { get; init; }

        /// <summary>
        /// From the first freeze to the commit of the busy circuits (the first wave of a
        /// two-wave handover; in one wave, of all): how long a streaming circuit stood still,
        /// before the target's adoption. <see cref="PauseMs"/> is the quiet ones' longer wait.
        /// </summary>
        public double BusyPauseMs { get; init; }

        /// <summary>In how many waves the circuits moved: 2, or 1 with a node that takes one (<see cref="TwoWaves"/>).</summary>
        public int Waves { get; init; }
    }

    /// <summary>
    /// The pause of a handover in its three parts, in milliseconds: freezing every circuit's
    /// pumps; guarding, dumping the first wave and removing the addresses; and shipping the
    /// first wave's images until the target holds them (its restore included) and the commit.
    /// </summary>
    public sealed record Phases(double FreezeMs, double DumpMs, double ShipMs);

    /// <summary>The <see cref="Outcome.Result"/> values, also the <c>result</c> label of <c>relay_handovers_total</c>.</summary>
    public static class Results
    {
        public const string Completed = "completed";
        public const string RolledBack = "rolled-back";
        public const string Failed = "failed";
    }

    /// <summary>Source to target: get ready to take circuits; answer <see cref="Offer"/> or <see cref="Refused"/>.</summary>
    /// <param name="SourceHost">The IP address the source will connect from (its cluster address).</param>
    /// <param name="Waves">
    /// <see cref="TwoWaves"/> when the source can send the quiet circuits after the commit; 0
    /// from a relay that predates waves (a field it does not send reads as 0), which sends
    /// every circuit before the commit. Both ends use two waves only when both can: a pair
    /// mid rolling upgrade still hands over.
    /// </param>
    public sealed record Prepare(string HandoverId, string SourceHost, int Waves = 0);

    /// <summary>Target to source: connect to <paramref name="Port"/> on my cluster address and present <paramref name="Token"/>.</summary>
    /// <param name="Waves"><see cref="TwoWaves"/> if the target takes the quiet circuits after the commit (the source asked, and it can); otherwise one wave.</param>
    public sealed record Offer(string HandoverId, int Port, byte[] Token, int Waves = 0);

    /// <summary>
    /// The busy circuits (those that moved a byte within <see cref="CircuitReceiver.BusyWithinMs"/>)
    /// are dumped, shipped, restored and committed first, and run on the target while the quiet
    /// ones are dumped and shipped: the pause a streaming circuit sees no longer grows with the
    /// idle circuits beside it. The commit covers both waves (the addresses move once); the
    /// quiet circuits' tuples go ahead of the first wave, so the target drops their segments
    /// from the moment it holds the addresses until it has restored them.
    /// </summary>
    public const int TwoWaves = 2;

    /// <summary>Target to source: I cannot take circuits now (<paramref name="Reason"/>).</summary>
    public sealed record Refused(string HandoverId, string Reason);

    /// <summary>The frame types of the state channel, in the order they travel.</summary>
    internal static class Frames
    {
        /// <summary>Source to target: a batch of circuit images (<see cref="CircuitImageFormat"/>).</summary>
        public const byte Circuits = 1;

        /// <summary>Source to target: every image has been sent.</summary>
        public const byte EndOfCircuits = 2;

        /// <summary>Target to source: these circuit ids are restored and held, not yet running (payload: count, then ids, little-endian).</summary>
        public const byte Restored = 3;

        /// <summary>Source to target: run them. From the moment it is sent, the circuits are the target's and the source never resumes them.</summary>
        public const byte Commit = 4;

        /// <summary>Target to source: the circuits run here now (payload: how many the routes adopted).</summary>
        public const byte Committed = 5;

        /// <summary>
        /// Source to target, first in a two-wave handover: the 4-tuples of the circuits of the
        /// second wave (<see cref="CircuitImageFormat.WriteTuples"/>), to be dropped until they
        /// are restored. After the commit the second wave's images follow as
        /// <see cref="Circuits"/> frames, then <see cref="EndOfCircuits"/>; the target answers
        /// <see cref="Restored"/> with their ids, then <see cref="Committed"/>.
        /// </summary>
        public const byte Tuples = 6;
    }
}
