using System.Net;
using System.Net.Sockets;

namespace Relay.Actors.Circuits.ProxyProtocol;

/// <summary>Which PROXY protocol header a route sends to its upstreams.</summary>
public enum ProxyProtocolVersion
{
    /// <summary>No header: the upstream sees the relay's address as the client.</summary>
    Off,

    /// <summary>Version 1, the human-readable text line ("PROXY TCP4 ...\r\n").</summary>
    V1,

    /// <summary>Version 2, the binary form (12-byte signature, then addresses).</summary>
    V2,
}

/// <summary>
/// What a PROXY protocol header (haproxy.org/download/2.9/doc/proxy-protocol.txt) says about
/// the connection it precedes.
/// </summary>
/// <param name="Version">1 (text) or 2 (binary).</param>
/// <param name="Source">The original client, or null when the header carries no usable
/// address (v1 <c>UNKNOWN</c>, v2 <c>LOCAL</c>, AF_UNSPEC or AF_UNIX): the receiver then
/// uses the connection's real peer, as the specification says.</param>
/// <param name="Destination">The address the original client connected to, or null with <paramref name="Source"/>.</param>
public sealed record ProxyHeader(int Version, IPEndPoint? Source, IPEndPoint? Destination)
{
    /// <summary>True when the header names the original client (a PROXY command with TCP over IPv4 or IPv6).</summary>
    public bool HasAddresses => Source is not null;
}

/// <summary>The outcome of <see cref="ProxyHeaderParser.Parse"/>.</summary>
public enum ProxyParseStatus
{
    /// <summary>A whole, valid header: <see cref="ProxyParseResult.Length"/> bytes of it.</summary>
    Complete,

    /// <summary>Everything so far is the start of a valid header; more bytes are needed.</summary>
    Incomplete,

    /// <summary>Not a valid header; <see cref="ProxyParseResult.Problem"/> says why in a few words.</summary>
    Invalid,
}

/// <summary>A parse result: never an exception, whatever the input.</summary>
public readonly record struct ProxyParseResult(ProxyParseStatus Status, ProxyHeader? Header, int Length, string? Problem)
{
    internal static ProxyParseResult NeedMore { get; } = new(ProxyParseStatus.Incomplete, null, 0, null);

    internal static ProxyParseResult Bad(string problem) => new(ProxyParseStatus.Invalid, null, 0, problem);

    internal static ProxyParseResult Done(ProxyHeader header, int length) => new(ProxyParseStatus.Complete, header, length, null);
}

/// <summary>Address helpers shared by the PROXY codec and admission control.</summary>
public static class ClientAddress
{
    /// <summary>
    /// An IPv4 client reaching a dual-stack (<c>[::]</c>) listener appears as ::ffff:a.b.c.d;
    /// ACLs, per-source limits and PROXY headers treat it as the IPv4 address it is.
    /// </summary>
    public static IPAddress Normalize(IPAddress address) =>
        address.AddressFamily == AddressFamily.InterNetworkV6 && address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    /// <summary><see cref="Normalize(IPAddress)"/> for an endpoint, keeping the port.</summary>
    public static IPEndPoint Normalize(IPEndPoint endpoint) =>
        endpoint.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(endpoint.Address.MapToIPv4(), endpoint.Port) : endpoint;
}
