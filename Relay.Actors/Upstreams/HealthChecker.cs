using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Relay.Actors.Internal;

namespace Relay.Actors.Upstreams;

/// <summary>
/// Active TCP health checks of one route's pool, like HAProxy's <c>check</c>: every
/// <see cref="HealthCheckSettings.Interval"/> it connects to each member and closes at once.
/// <see cref="HealthCheckSettings.Fall"/> failures in a row mark the member down,
/// <see cref="HealthCheckSettings.Rise"/> successes in a row mark it up (the pool logs both).
/// Checks use .NET's async connect: they are not on the circuit data path, a few per interval.
/// </summary>
public sealed class HealthChecker : UntypedActor, IWithTimers
{
    private readonly UpstreamPool _pool;
    private readonly HealthCheckSettings _settings;
    private readonly int[] _goodInRow;
    private readonly int[] _badInRow;
    private readonly bool[] _inFlight;

    public HealthChecker(UpstreamPool pool)
    {
        _pool = pool;
        _settings = pool.Settings.HealthCheck;
        var n = pool.Members.Count;
        _goodInRow = new int[n];
        _badInRow = new int[n];
        _inFlight = new bool[n];
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(UpstreamPool pool) => PropsFactory.Of(() => new HealthChecker(pool));

    protected override void PreStart()
    {
        Timers.StartPeriodicTimer(Tick.Instance, Tick.Instance, TimeSpan.Zero, _settings.Interval);
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case Tick:
                for (var i = 0; i < _inFlight.Length; i++)
                {
                    if (!_inFlight[i])
                    {
                        _inFlight[i] = true;
                        var member = i;
                        CheckAsync(_pool.Members[i].Address, _settings.Timeout)
                            .PipeTo(Self, success: problem => new Checked(member, problem));
                    }
                }

                break;

            case Checked result:
                _inFlight[result.Member] = false;
                OnResult(result.Member, result.Problem);
                break;

            default:
                Unhandled(message);
                break;
        }
    }

    private void OnResult(int member, string? problem)
    {
        var m = _pool.Members[member];
        if (problem is null)
        {
            _badInRow[member] = 0;
            // Also ends a passive ejection: a check that connects proves the member reachable.
            if (++_goodInRow[member] >= _settings.Rise && !m.IsUp)
            {
                _pool.OnHealthCheck(member, up: true, $"{_goodInRow[member]} good health check(s) in a row");
            }
        }
        else
        {
            _goodInRow[member] = 0;
            if (++_badInRow[member] >= _settings.Fall && !m.IsActiveDown)
            {
                _pool.OnHealthCheck(member, up: false, $"{_badInRow[member]} failed health check(s) in a row (last: {problem})");
            }
        }
    }

    /// <summary>Connects and closes; null when the connect succeeded, else a short reason.</summary>
    private static async Task<string?> CheckAsync(Configuration.UpstreamAddress address, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            IPAddress ip;
            if (!IPAddress.TryParse(address.Host, out ip!))
            {
                var all = await Dns.GetHostAddressesAsync(address.Host, cts.Token).ConfigureAwait(false);
                ip = all.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? all.FirstOrDefault()
                    ?? throw new SocketException((int)SocketError.HostNotFound);
            }

            using var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(new IPEndPoint(ip, address.Port), cts.Token).ConfigureAwait(false);
            // Close with a reset: a check must not leave TIME_WAIT sockets behind on the relay at every interval.
            socket.LingerState = new LingerOption(true, 0);
            return null;
        }
        catch (OperationCanceledException)
        {
            return $"no answer within {Configuration.ConfigReader.FormatDuration(timeout)}";
        }
        catch (SocketException e)
        {
            return e.SocketErrorCode.ToString();
        }
        catch (Exception e)
        {
            return e.GetBaseException().Message;
        }
    }

    private sealed class Tick : INoSerializationVerificationNeeded
    {
        public static readonly Tick Instance = new();
    }

    private sealed record Checked(int Member, string? Problem) : INoSerializationVerificationNeeded;
}
