using Relay.Actors.Handover;
using Relay.Tests.Support;

namespace Relay.Tests.Handover;

/// <summary>
/// The start-up rehearsal (root: TCP_REPAIR needs CAP_NET_ADMIN) really hands a loopback
/// connection over within the process: it returns only once the restored socket has read the
/// bytes the original had queued and the peer has read the bytes the original had sent, and
/// throws <see cref="HandoverRehearsalException"/> naming the step otherwise.
/// </summary>
public sealed class HandoverRehearsalTests
{
    [RootLabFact]
    public async Task A_loopback_connection_is_handed_over_within_the_process_with_its_queued_bytes_both_ways()
    {
        var first = await HandoverRehearsal.RunAsync();
        // Twice in one process: nothing of the first run (a port, a guard element, a socket) is in the second's way.
        var second = await HandoverRehearsal.RunAsync();
        Assert.True(first > TimeSpan.Zero && second > TimeSpan.Zero);
    }
}
