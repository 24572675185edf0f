using System.Collections.Immutable;
using System.Runtime.Serialization;
using System.Text;
using Akka.Actor;
using Akka.Serialization;
using Relay.Actors.Circuits;

namespace Relay.Actors.Cluster.Internal;

/// <summary>
/// INTERNAL API. The wire form of <see cref="CircuitShard"/>: a version byte, then length-
/// prefixed UTF-8 strings and 7-bit-encoded integers, about 85 bytes per circuit. Bound in
/// hocon/cluster-akka.conf; the JSON fallback would be ~4x larger and slower.
/// </summary>
internal sealed class CircuitShardSerializer : SerializerWithStringManifest
{
    private const byte Version = 1;
    private const string ShardManifest = "CS";

    public CircuitShardSerializer(ExtendedActorSystem system)
        : base(system)
    {
    }

    // Relay's own range, clear of Akka's (< 100) and of the usual third-party ids.
    public override int Identifier => 7407;

    public override string Manifest(object o) => o is CircuitShard
        ? ShardManifest
        : throw new ArgumentException($"cannot serialize {o.GetType()}", nameof(o));

    public override byte[] ToBinary(object obj)
    {
        var shard = (CircuitShard)obj;
        using var stream = new MemoryStream(32 + shard.Circuits.Length * 96);
        using (var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Version);
            w.Write(shard.Node);
            w.Write7BitEncodedInt(shard.Shard);
            w.Write7BitEncodedInt(shard.Circuits.Length);
            foreach (var c in shard.Circuits)
            {
                w.Write7BitEncodedInt64(c.Id);
                w.Write(c.Route);
                w.Write(c.Client);
                w.Write(c.Upstream);
                w.Write((byte)c.State);
                w.Write7BitEncodedInt64(c.BytesUp);
                w.Write7BitEncodedInt64(c.BytesDown);
                w.Write7BitEncodedInt64(c.OpenedAtMs);
                w.Write7BitEncodedInt64(c.LastActivityMs);
            }
        }

        return stream.ToArray();
    }

    public override object FromBinary(byte[] bytes, string manifest)
    {
        if (manifest != ShardManifest)
        {
            throw new SerializationException($"unknown manifest '{manifest}' for {nameof(CircuitShardSerializer)}");
        }

        using var r = new BinaryReader(new MemoryStream(bytes), Encoding.UTF8);
        var version = r.ReadByte();
        if (version != Version)
        {
            throw new SerializationException($"circuit table version {version} is not {Version}: nodes of different relay versions");
        }

        var node = r.ReadString();
        var shard = r.Read7BitEncodedInt();
        var count = r.Read7BitEncodedInt();
        var circuits = ImmutableArray.CreateBuilder<CircuitRecord>(count);
        for (var i = 0; i < count; i++)
        {
            circuits.Add(new CircuitRecord(
                r.Read7BitEncodedInt64(),
                r.ReadString(),
                r.ReadString(),
                r.ReadString(),
                (CircuitState)r.ReadByte(),
                r.Read7BitEncodedInt64(),
                r.Read7BitEncodedInt64(),
                r.Read7BitEncodedInt64(),
                r.Read7BitEncodedInt64()));
        }

        return new CircuitShard(node, shard, circuits.MoveToImmutable());
    }
}
