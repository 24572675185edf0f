using System.Text;
using System.Text.Json.Nodes;
using Akka.Actor;
using Relay.Actors.Handover;

namespace Relay.Tests.Handover;

/// <summary>
/// The handover's control messages travel between nodes that may run different versions (a
/// rolling upgrade hands over from the old relay to the new one and back). A field added to
/// <see cref="HandoverProtocol.Prepare"/> or <see cref="HandoverProtocol.Offer"/> must read as
/// its default from a relay that does not send it, through the serializer Akka.Remote really
/// uses for them: that default is what makes both ends fall back to one wave.
/// </summary>
public sealed class HandoverProtocolCompatibilityTests : IDisposable
{
    private readonly ActorSystem _system = ActorSystem.Create("compat");

    public void Dispose() => _system.Dispose();

    [Fact]
    public void A_prepare_and_an_offer_without_waves_from_an_older_relay_read_as_one_wave()
    {
        var prepare = RoundTripWithout(new HandoverProtocol.Prepare("h1", "198.18.0.2", HandoverProtocol.TwoWaves), "Waves");
        Assert.Equal(new HandoverProtocol.Prepare("h1", "198.18.0.2", 0), prepare);

        var offer = RoundTripWithout(new HandoverProtocol.Offer("h1", 41000, [1, 2, 3], HandoverProtocol.TwoWaves), "Waves");
        Assert.Equal(("h1", 41000, 0), (offer.HandoverId, offer.Port, offer.Waves));
        Assert.Equal([1, 2, 3], offer.Token);
    }

    [Fact]
    public void A_prepare_and_an_offer_with_waves_keep_them()
    {
        Assert.Equal(HandoverProtocol.TwoWaves, RoundTripWithout(new HandoverProtocol.Prepare("h2", "198.18.0.2", HandoverProtocol.TwoWaves), null).Waves);
        Assert.Equal(HandoverProtocol.TwoWaves, RoundTripWithout(new HandoverProtocol.Offer("h2", 41000, [9], HandoverProtocol.TwoWaves), null).Waves);
    }

    /// <summary>Serializes <paramref name="message"/> as Akka would for the wire, drops <paramref name="field"/> (as an older relay never wrote it) and reads it back.</summary>
    private T RoundTripWithout<T>(T message, string? field)
        where T : notnull
    {
        var serializer = _system.Serialization.FindSerializerFor(message);
        var bytes = serializer.ToBinary(message);
        if (field is not null)
        {
            var json = JsonNode.Parse(bytes)!.AsObject();
            Assert.True(json.Remove(field), $"{field} is not in the serialized {typeof(T).Name}: {Encoding.UTF8.GetString(bytes)}");
            bytes = Encoding.UTF8.GetBytes(json.ToJsonString());
        }

        return (T)serializer.FromBinary(bytes, typeof(T));
    }
}
