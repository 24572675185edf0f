using System.Net.Sockets;
using Relay.Actors.Configuration;
using Relay.Actors.Native;

namespace Relay.Actors.Cluster;

/// <summary>
/// The node's floating addresses (the VIP, and the egress VIP when one is configured): adds
/// and removes them over rtnetlink (what <c>ip addr replace</c> and <c>ip addr del</c> do)
/// and announces them from the relay itself: a gratuitous ARP for an IPv4 address, an
/// unsolicited neighbour advertisement for an IPv6 one, sent on an AF_PACKET socket. Linux
/// announces neither when an address is added, and without an announcement the segment's
/// hosts keep sending to the old owner's MAC until their neighbour entry expires (tens of
/// seconds). No external program runs: a spawn costs milliseconds under load, and a host
/// without the program (Debian installs no arping) would fail over only that slowly.
/// <para>
/// One netlink socket and one packet socket serve every address, on any device: both are
/// opened when the controller is made (the node's start, in the node's network namespace)
/// and held, so a missing capability (CAP_NET_ADMIN for the address, CAP_NET_RAW for the
/// packet socket) shows at start rather than at the first failover; an operation whose
/// socket could not be opened tries again and says why it failed.
/// </para>
/// <para>
/// Each operation exists for one address and for all of them (in <see cref="Addresses"/>
/// order, the VIP first). With a single address the result of "all" is that address's
/// result; with several, each problem is prefixed with the address it concerns.
/// </para>
/// Thread-safe; each operation is a few system calls and returns at once.
/// </summary>
public sealed class VipController : IDisposable
{
    private readonly Lock _gate = new();
    private RtNetlink? _netlink;
    private LinkLayerSocket? _packets;
    private bool _disposed;

    /// <summary>A controller for <paramref name="addresses"/> (at least one).</summary>
    public VipController(IReadOnlyList<FloatingAddress> addresses)
    {
        if (addresses.Count == 0)
        {
            throw new ArgumentException("a VIP controller needs at least one address", nameof(addresses));
        }

        Addresses = addresses;
        Open();
    }

    /// <summary>A controller for one service VIP on <paramref name="device"/>.</summary>
    public VipController(VirtualIp vip, string device)
        : this([new FloatingAddress(FloatingAddressKind.Service, vip, device)])
    {
    }

    /// <summary>The addresses, the VIP first.</summary>
    public IReadOnlyList<FloatingAddress> Addresses { get; }

    /// <summary>What the packet socket is for, as the addresses' families need it.</summary>
    private string AnnouncementsName
    {
        get
        {
            bool v4 = false, v6 = false;
            foreach (var address in Addresses)
            {
                v4 |= !IsV6(address);
                v6 |= IsV6(address);
            }

            return v4 && v6 ? "gratuitous ARPs and neighbour advertisements"
                : v6 ? AnnouncementName(v6: true)
                : AnnouncementName(v6: false);
        }
    }

    /// <summary>
    /// Opens whichever socket is not open yet: Ok, or the problem (one line) with each that
    /// cannot be opened.
    /// </summary>
    public VipResult Open()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return new VipResult(false, "the node is shutting down (its VIP sockets are closed)");
            }

            var problems = new List<string>(2);
            if (_netlink is null)
            {
                try
                {
                    _netlink = RtNetlink.Open();
                }
                catch (NativeCallException e)
                {
                    problems.Add($"cannot open a netlink socket: {Describe(e.Errno, "CAP_NET_ADMIN")}");
                }
            }

            if (_packets is null)
            {
                try
                {
                    _packets = LinkLayerSocket.Open();
                }
                catch (NativeCallException e)
                {
                    problems.Add($"cannot open a packet socket to send {AnnouncementsName}: {Describe(e.Errno, "CAP_NET_RAW")}");
                }
            }

            return problems.Count == 0 ? VipResult.Success : new VipResult(false, string.Join("; ", problems));
        }
    }

    /// <summary>
    /// Adds every address, in order, replacing one that is there already; stops at the first
    /// that fails (the result's <see cref="VipResult.Address"/>). A retry adds them all again.
    /// With <paramref name="lifetime"/> the kernel removes them by itself when it runs out, so
    /// a process that dies holding them does not keep them on this host (a handover's target
    /// until the commit); a later <see cref="Add()"/> makes them permanent.
    /// </summary>
    public VipResult Add(TimeSpan? lifetime = null)
    {
        foreach (var address in Addresses)
        {
            if (Add(address, lifetime) is { Ok: false } failed)
            {
                return Addresses.Count == 1 ? failed : failed with { Problem = $"{address}: {failed.Problem}" };
            }
        }

        return VipResult.Success;
    }

    /// <summary>Adds <paramref name="address"/>, replacing it if it is there already (idempotent, as <c>ip addr replace</c>).</summary>
    public VipResult Add(FloatingAddress address, TimeSpan? lifetime = null)
    {
        if (Link(address, out var netlink, out var index, out _) is { Ok: false } failed)
        {
            return failed;
        }

        var result = netlink!.ReplaceAddress(index, address.Address.Address, address.Address.PrefixLength, lifetime);
        return result.Ok ? VipResult.Success : Failed(address, Describe(result, "CAP_NET_ADMIN"));
    }

    /// <summary>Removes every address; one that fails does not keep the others.</summary>
    public VipResult Remove() => ForEach(Remove);

    /// <summary>Removes <paramref name="address"/>; an address that is not there counts as removed.</summary>
    public VipResult Remove(FloatingAddress address)
    {
        if (Link(address, out var netlink, out var index, out _) is { Ok: false } failed)
        {
            return failed;
        }

        var result = netlink!.DeleteAddress(index, address.Address.Address, address.Address.PrefixLength);
        return result.Ok || result.Errno is Errno.EADDRNOTAVAIL or Errno.ENOENT
            ? VipResult.Success
            : Failed(address, Describe(result, "CAP_NET_ADMIN"));
    }

    /// <summary>Sends one announcement of every address; one that fails does not keep the others.</summary>
    public VipResult Announce() => ForEach(Announce);

    /// <summary>
    /// Sends one announcement of <paramref name="address"/> with its device's current MAC. The
    /// caller repeats it for a neighbour that missed one; each is a single send that does not block.
    /// </summary>
    public VipResult Announce(FloatingAddress address)
    {
        if (Link(address, out _, out var index, out var mac) is { Ok: false } failed)
        {
            return failed;
        }

        var v6 = IsV6(address);
        if (mac.Length != PacketSocket.ETH_ALEN)
        {
            return Failed(address, $"{address.Device} has no Ethernet address ({mac.Length}-byte hardware address), so neighbours cannot be sent {AnnouncementName(v6)}");
        }

        LinkLayerSocket? packets;
        lock (_gate)
        {
            packets = _packets;
        }

        if (packets is null && Open() is { Ok: false } notOpen)
        {
            return notOpen with { Address = address };
        }

        packets ??= _packets!;
        var ip = address.Address.Address;
        var errno = v6
            ? packets.Send(index, PacketSocket.ETH_P_IPV6, NeighbourAnnouncement.AllNodesMac,
                NeighbourAnnouncement.UnsolicitedNeighbourAdvertisement(ip, mac))
            : packets.Send(index, PacketSocket.ETH_P_ARP, NeighbourAnnouncement.Broadcast,
                NeighbourAnnouncement.GratuitousArp(ip, mac));
        return errno == 0
            ? VipResult.Success
            : Failed(address, $"sending {AnnouncementName(v6)} on {address.Device} failed: {Describe(errno, "CAP_NET_RAW")}");
    }

    /// <summary>
    /// <paramref name="operation"/> on every address: Ok, or the first failure, whose problem
    /// (with several addresses) names each address that failed and why.
    /// </summary>
    private VipResult ForEach(Func<FloatingAddress, VipResult> operation)
    {
        VipResult? first = null;
        List<string>? problems = null;
        foreach (var address in Addresses)
        {
            var result = operation(address);
            if (!result.Ok)
            {
                first ??= result;
                (problems ??= new List<string>(Addresses.Count)).Add($"{address}: {result.Problem}");
            }
        }

        return first is null ? VipResult.Success
            : Addresses.Count == 1 ? first
            : first with { Problem = string.Join("; ", problems!) };
    }

    /// <summary>The netlink socket and the address's device's index and MAC, looked up now (a device can be re-created under the same name).</summary>
    private VipResult Link(FloatingAddress address, out RtNetlink? netlink, out int index, out byte[] mac)
    {
        index = -1;
        mac = [];
        lock (_gate)
        {
            netlink = _netlink;
        }

        if (netlink is null)
        {
            var opened = Open();
            lock (_gate)
            {
                netlink = _netlink;
            }

            if (netlink is null)
            {
                return opened with { Address = address };
            }
        }

        var result = netlink.GetLink(address.Device, out index, out mac);
        if (result.Errno == Errno.ENODEV)
        {
            return Failed(address, $"no network device \"{address.Device}\" ({address.DeviceKey})");
        }

        return result.Ok ? VipResult.Success : Failed(address, $"cannot read device {address.Device}: {Describe(result, "CAP_NET_ADMIN")}");
    }

    private static bool IsV6(FloatingAddress address) => address.Address.Address.AddressFamily == AddressFamily.InterNetworkV6;

    private static string AnnouncementName(bool v6) => v6 ? "an unsolicited neighbour advertisement" : "a gratuitous ARP";

    private static VipResult Failed(FloatingAddress address, string problem) => new(false, problem) { Address = address };

    private static string Describe(NetlinkResult result, string capability) =>
        Describe(result.Errno, capability) + (result.KernelMessage is { Length: > 0 } m ? $" ({m})" : "");

    private static string Describe(int errno, string capability) =>
        Errno.IsPermission(errno)
            ? $"{Errno.Describe(errno)}: the relay needs {capability} (run it as root, or give it the capability: ops/systemd/relay.service)"
            : Errno.Describe(errno);

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _netlink?.Dispose();
            _packets?.Dispose();
            _netlink = null;
            _packets = null;
        }
    }
}

/// <summary>
/// What a VIP operation did; <see cref="Problem"/> is one line for the log when it failed, and
/// <see cref="Address"/> the address it failed on (null when it concerns none in particular).
/// </summary>
public sealed record VipResult(bool Ok, string Problem)
{
    public static readonly VipResult Success = new(true, "");

    public FloatingAddress? Address { get; init; }
}
