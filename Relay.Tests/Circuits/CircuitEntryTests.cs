using System.Net;
using Akka.Actor;
using Relay.Actors.Circuits;

namespace Relay.Tests.Circuits;

/// <summary>What the outside world reads of a circuit's upstream, formatted only when read.</summary>
public sealed class CircuitEntryTests
{
    [Fact]
    public void The_upstream_is_formatted_once_when_first_read_and_again_only_after_it_changes()
    {
        var first = new Counted("pool a");
        var entry = NewEntry(first);
        Assert.Equal(0, first.Formatted);

        Assert.Equal("pool a", entry.Upstream);
        Assert.Equal("pool a", entry.Upstream);
        Assert.Equal(1, first.Formatted);

        entry.SetUpstream(new IPEndPoint(IPAddress.Parse("198.18.0.9"), 8080));
        Assert.Equal("198.18.0.9:8080", entry.Upstream);
    }

    [Fact]
    public void A_reader_formatting_an_upstream_the_circuit_has_left_does_not_put_its_text_back()
    {
        var entry = NewEntry("placeholder");
        // The circuit moves on to its next member while a reader on another thread formats the
        // old one: that reader answers with the old text, and the entry keeps the new upstream.
        var old = new Counted("member 1", whileFormatting: () => entry.SetUpstream("member 2"));
        entry.SetUpstream(old);

        Assert.Equal("member 1", entry.Upstream);
        Assert.Equal("member 2", entry.Upstream);
    }

    [Fact]
    public void A_circuit_opened_here_has_no_moves_and_a_moved_one_keeps_its_age_and_history()
    {
        var before = DateTimeOffset.UtcNow;
        var here = NewEntry("u");
        Assert.InRange(here.OpenedAt, before, DateTimeOffset.UtcNow);
        Assert.Equal(0, here.Moves);
        Assert.Null(here.MovedAt);

        var opened = new DateTimeOffset(2026, 12, 7, 21, 30, 15, TimeSpan.FromHours(2)).AddTicks(7);
        var arrived = DateTimeOffset.UtcNow;
        var moved = new CircuitEntry(2, "route", "node", new IPEndPoint(IPAddress.Loopback, 40001), "u", 0, ActorRefs.Nobody)
        {
            MovedAt = arrived,
            OpenedAt = opened,
            Moves = 3,
        };
        Assert.Equal(opened, moved.OpenedAt);
        Assert.Equal(3, moved.Moves);
        Assert.Equal(arrived, moved.MovedAt);
    }

    private static CircuitEntry NewEntry(object upstream) =>
        new(1, "route", "node", new IPEndPoint(IPAddress.Loopback, 40000), upstream, 0, ActorRefs.Nobody);

    private sealed class Counted(string text, Action? whileFormatting = null)
    {
        public int Formatted { get; private set; }

        public override string ToString()
        {
            Formatted++;
            whileFormatting?.Invoke();
            return text;
        }
    }
}
