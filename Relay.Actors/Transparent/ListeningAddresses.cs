using System.Collections.Concurrent;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Akka.Actor;

namespace Relay.Actors.Transparent;

/// <summary>
/// The loop guard's memory: every address the node's route listeners are bound to. A
/// transparent route must never connect to one of them, or a connection intercepted twice
/// (a rule that catches the relay's own traffic, a client that dials the listener itself)
/// would make the relay connect to itself until it runs out of descriptors.
/// One per ActorSystem (an Akka extension), filled by the listeners as they bind.
/// </summary>
public sealed class ListeningAddresses : IExtension
{
    // Keyed by listener (its actor name), not by route: during a reload a route's retiring
    // listener and its successor live side by side, and the old one's exit must not remove
    // the new one's address.
    private readonly ConcurrentDictionary<string, IPEndPoint> _byListener = new(StringComparer.Ordinal);
    private readonly Func<IPAddress, bool> _isLocal;

    public ListeningAddresses()
        : this(IsLocalAddress)
    {
    }

    /// <param name="isLocal">Whether an address belongs to this host (tests pass their own).</param>
    public ListeningAddresses(Func<IPAddress, bool> isLocal) => _isLocal = isLocal;

    public static ListeningAddresses For(ActorSystem system) =>
        system.WithExtension<ListeningAddresses, ListeningAddressesProvider>();

    public void Add(string listener, IPEndPoint bound) => _byListener[listener] = bound;

    public void Remove(string listener) => _byListener.TryRemove(listener, out _);

    /// <summary>
    /// The listener <paramref name="destination"/> would reach, or null. A wildcard listener
    /// (0.0.0.0:15001, [::]:15001) is reached through every local address with its port.
    /// The interface list is read only when the port is one the relay listens on, which a
    /// healthy gateway almost never sees, so the common path costs a dictionary walk.
    /// </summary>
    public IPEndPoint? FindLoop(IPEndPoint destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var address = DestinationPolicy.Normalize(destination.Address);
        foreach (var bound in _byListener.Values)
        {
            if (bound.Port != destination.Port)
            {
                continue;
            }

            var boundAddress = DestinationPolicy.Normalize(bound.Address);
            var wildcard = boundAddress.Equals(IPAddress.Any) || boundAddress.Equals(IPAddress.IPv6Any);
            if (boundAddress.Equals(address) || (wildcard && _isLocal(address)))
            {
                return bound;
            }
        }

        return null;
    }

    /// <summary>Loopback, unspecified, or assigned to one of this network namespace's interfaces.</summary>
    public static bool IsLocalAddress(IPAddress address)
    {
        address = WithoutScope(DestinationPolicy.Normalize(address));
        if (IPAddress.IsLoopback(address) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any))
        {
            return true;
        }

        try
        {
            foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
            {
                foreach (var unicast in nic.GetIPProperties().UnicastAddresses)
                {
                    if (WithoutScope(unicast.Address).Equals(address))
                    {
                        return true;
                    }
                }
            }
        }
        catch (NetworkInformationException)
        {
            // Cannot list the interfaces: fail safe, a loop costs more than a refused circuit.
            return true;
        }

        return false;
    }

    // fe80::1%2 and fe80::1 are the same address to the question "is it mine?".
    private static IPAddress WithoutScope(IPAddress address) =>
        address.AddressFamily == AddressFamily.InterNetworkV6 && address.ScopeId != 0 ? new IPAddress(address.GetAddressBytes()) : address;
}

/// <summary>INTERNAL API. Akka's factory for <see cref="ListeningAddresses"/>.</summary>
public sealed class ListeningAddressesProvider : ExtensionIdProvider<ListeningAddresses>
{
    public override ListeningAddresses CreateExtension(ExtendedActorSystem system) => new();
}
