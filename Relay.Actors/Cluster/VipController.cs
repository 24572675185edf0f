using System.Net.Sockets;
using Relay.Actors.Configuration;
using Relay.Actors.Native;

namespace Relay.Actors.Cluster;

/// <summary>
/// Adds and removes the virtual IP over rtnetlink (what <c>ip addr replace</c> and
/// <c>ip addr del</c> do) and announces it from the relay itself: a gratuitous ARP for an IPv4
/// VIP, an unsolicited neighbour advertisement for an IPv6 one, sent on an AF_PACKET socket.
/// Linux announces neither when an address is added, and without an announcement the
/// segment's hosts keep sending to the old owner's MAC until their neighbour entry expires
/// (tens of seconds). No external program runs: a spawn costs milliseconds under load, and
/// a host without the program (Debian installs no arping) would fail over only that slowly.
/// <para>
/// Both sockets are opened when the controller is made (the node's start, in the node's
/// network namespace) and held, so a missing capability (CAP_NET_ADMIN for the address,
/// CAP_NET_RAW for the packet socket) shows at start rather than at the first failover; an
/// operation whose socket could not be opened tries again and says why it failed.
/// </para>
/// Thread-safe; each operation is a few system calls and returns at once.
/// </summary>
public sealed class VipController : IDisposable
{
    private readonly Lock _gate = new();
    private RtNetlink? _netlink;
    private LinkLayerSocket? _packets;
    private bool _disposed;

    public VipController(VirtualIp vip, string device)
    {
        Vip = vip;
        Device = device;
        Open();
    }

    public VirtualIp Vip { get; }

    public string Device { get; }

    private bool IsV6 => Vip.Address.AddressFamily == AddressFamily.InterNetworkV6;

    private string AnnouncementName => IsV6 ? "an unsolicited neighbour advertisement" : "a gratuitous ARP";

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
                    problems.Add($"cannot open a packet socket to send {AnnouncementName}: {Describe(e.Errno, "CAP_NET_RAW")}");
                }
            }

            return problems.Count == 0 ? VipResult.Success : new VipResult(false, string.Join("; ", problems));
        }
    }

    /// <summary>Adds the VIP, replacing it if it is there already (idempotent, as <c>ip addr replace</c>).</summary>
    public VipResult Add()
    {
        if (Link(out var netlink, out var index, out _) is { Ok: false } failed)
        {
            return failed;
        }

        var result = netlink!.ReplaceAddress(index, Vip.Address, Vip.PrefixLength);
        return result.Ok ? VipResult.Success : new VipResult(false, Describe(result, "CAP_NET_ADMIN"));
    }

    /// <summary>Removes the VIP; an address that is not there counts as removed.</summary>
    public VipResult Remove()
    {
        if (Link(out var netlink, out var index, out _) is { Ok: false } failed)
        {
            return failed;
        }

        var result = netlink!.DeleteAddress(index, Vip.Address, Vip.PrefixLength);
        return result.Ok || result.Errno is Errno.EADDRNOTAVAIL or Errno.ENOENT
            ? VipResult.Success
            : new VipResult(false, Describe(result, "CAP_NET_ADMIN"));
    }

    /// <summary>
    /// Sends one announcement of the VIP with the device's current MAC. The caller repeats it
    /// for a neighbour that missed one; each is a single send that does not block.
    /// </summary>
    public VipResult Announce()
    {
        if (Link(out _, out var index, out var mac) is { Ok: false } failed)
        {
            return failed;
        }

        if (mac.Length != PacketSocket.ETH_ALEN)
        {
            return new VipResult(false, $"{Device} has no Ethernet address ({mac.Length}-byte hardware address), so neighbours cannot be sent {AnnouncementName}");
        }

        LinkLayerSocket? packets;
        lock (_gate)
        {
            packets = _packets;
        }

        if (packets is null && Open() is { Ok: false } notOpen)
        {
            return notOpen;
        }

        packets ??= _packets!;
        var errno = IsV6
            ? packets.Send(index, PacketSocket.ETH_P_IPV6, NeighbourAnnouncement.AllNodesMac,
                NeighbourAnnouncement.UnsolicitedNeighbourAdvertisement(Vip.Address, mac))
            : packets.Send(index, PacketSocket.ETH_P_ARP, NeighbourAnnouncement.Broadcast,
                NeighbourAnnouncement.GratuitousArp(Vip.Address, mac));
        return errno == 0
            ? VipResult.Success
            : new VipResult(false, $"sending {AnnouncementName} on {Device} failed: {Describe(errno, "CAP_NET_RAW")}");
    }

    /// <summary>The netlink socket and the device's index and MAC, looked up now (a device can be re-created under the same name).</summary>
    private VipResult Link(out RtNetlink? netlink, out int index, out byte[] mac)
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
                return opened;
            }
        }

        var result = netlink.GetLink(Device, out index, out mac);
        if (result.Errno == Errno.ENODEV)
        {
            return new VipResult(false, $"no network device \"{Device}\" (relay.cluster.vip-device)");
        }

        return result.Ok ? VipResult.Success : new VipResult(false, $"cannot read device {Device}: {Describe(result, "CAP_NET_ADMIN")}");
    }

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

/// <summary>What a VIP operation did; <see cref="Problem"/> is one line for the log when it failed.</summary>
public sealed record VipResult(bool Ok, string Problem)
{
    public static readonly VipResult Success = new(true, "");
}
