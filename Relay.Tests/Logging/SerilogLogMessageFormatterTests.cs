using Relay.Host.Logging;

namespace Relay.Tests.Logging;

public sealed class SerilogLogMessageFormatterTests
{
    private readonly SerilogLogMessageFormatter _formatter = new();

    [Fact]
    public void Named_template_with_literal_event_name_renders_bare_values()
    {
        var text = _formatter.Format("{EventName:l} circuit {CircuitId} closed: {Reason}", "CircuitClosed", 42L, "eof");

        Assert.Equal("CircuitClosed circuit 42 closed: eof", text);
    }

    [Fact]
    public void Positional_template_as_Akka_itself_uses_still_renders()
    {
        var text = _formatter.Format("Message [{0}] from {1} was not delivered. [{2}] dead letters", "Ping", "akka://relay/user/a", 3);

        Assert.Equal("Message [Ping] from akka://relay/user/a was not delivered. [3] dead letters", text);
    }

    [Fact]
    public void Format_specifiers_and_escaped_braces_follow_Serilog()
    {
        var text = _formatter.Format("{Ratio:0.00} of {{window}} in {Duration:c}", 0.5, TimeSpan.FromSeconds(90));

        Assert.Equal("0.50 of {window} in 00:01:30", text);
    }

    [Fact]
    public void Enumerable_arguments_render_like_an_array()
    {
        var text = _formatter.Format("{EventName:l} on {Route}", (IEnumerable<object>)new List<object> { "ListenerBound", "jumbo-out" });

        Assert.Equal("ListenerBound on jumbo-out", text);
    }

    [Fact]
    public void Missing_arguments_leave_the_hole_visible()
    {
        var text = _formatter.Format("{EventName:l} circuit {CircuitId}", "CircuitOpened");

        Assert.Equal("CircuitOpened circuit {CircuitId}", text);
    }
}
