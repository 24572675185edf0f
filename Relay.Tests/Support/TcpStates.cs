using System.Globalization;

namespace Relay.Tests.Support;

/// <summary>Reads the kernel's TCP socket table (/proc/net/tcp and tcp6) to check for leftover states.</summary>
internal static class TcpStates
{
    // include/net/tcp_states.h
    private static readonly Dictionary<string, string> Names = new()
    {
        ["01"] = "ESTABLISHED", ["02"] = "SYN_SENT", ["03"] = "SYN_RECV", ["04"] = "FIN_WAIT1",
        ["05"] = "FIN_WAIT2", ["06"] = "TIME_WAIT", ["07"] = "CLOSE", ["08"] = "CLOSE_WAIT",
        ["09"] = "LAST_ACK", ["0A"] = "LISTEN", ["0B"] = "CLOSING",
    };

    /// <summary>States a relay must never leave behind once its circuits have ended.</summary>
    public static readonly string[] Lingering = ["CLOSE_WAIT", "CLOSING", "LAST_ACK", "FIN_WAIT1", "FIN_WAIT2"];

    /// <summary>Every socket whose local or remote port is one of <paramref name="ports"/>, with its state.</summary>
    public static List<(int LocalPort, int RemotePort, string State)> ForPorts(params int[] ports)
    {
        var result = new List<(int, int, string)>();
        foreach (var file in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            if (!File.Exists(file))
            {
                continue;
            }

            foreach (var line in File.ReadLines(file).Skip(1))
            {
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                var local = int.Parse(parts[1].Split(':')[1], NumberStyles.HexNumber);
                var remote = int.Parse(parts[2].Split(':')[1], NumberStyles.HexNumber);
                if (ports.Contains(local) || ports.Contains(remote))
                {
                    result.Add((local, remote, Names.GetValueOrDefault(parts[3], parts[3])));
                }
            }
        }

        return result;
    }
}
