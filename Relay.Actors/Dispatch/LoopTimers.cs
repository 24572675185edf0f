using Akka.Actor;

namespace Relay.Actors.Dispatch;

/// <summary>
/// The one-shot timers of one core thread, kept on the thread itself: a binary min-heap of
/// due times that the core's event loop consults for its epoll_wait timeout and fires from
/// the same thread. A circuit's connect and idle timers used Akka's scheduler, whose
/// registrations cost a cross-thread queue each and whose ticks wake thread-pool workers
/// that then spin; here arming, re-arming and cancelling are a few array moves on the
/// circuit's own thread, and a timer that never fires never wakes anything.
/// <para>
/// Not thread-safe: every member must be called on the owning core thread (the actors of
/// that core run there). The clock is injected so tests need not sleep.
/// </para>
/// </summary>
public sealed class LoopTimers
{
    private readonly Func<long> _nowMs;
    private LoopTimer[] _heap = new LoopTimer[64];
    private int _count;

    /// <param name="nowMs">A monotonic clock in milliseconds; <see cref="Environment.TickCount64"/> by default.</param>
    public LoopTimers(Func<long>? nowMs = null)
    {
        _nowMs = nowMs ?? (static () => Environment.TickCount64);
    }

    /// <summary>Armed timers.</summary>
    public int Count => _count;

    /// <summary>The clock the timers run on, in milliseconds.</summary>
    public long NowMs => _nowMs();

    /// <summary>
    /// Tells <paramref name="target"/> <paramref name="message"/> (with no sender) once
    /// <paramref name="after"/> has passed, unless the returned timer is cancelled first.
    /// </summary>
    public LoopTimer ScheduleTellOnce(TimeSpan after, IActorRef target, object message)
    {
        var timer = new LoopTimer(this, target, message);
        timer.Start(after);
        return timer;
    }

    /// <summary>Milliseconds until the earliest timer is due: 0 if one is due now, -1 if none is armed.</summary>
    public int MillisUntilNext()
    {
        if (_count == 0)
        {
            return -1;
        }

        var wait = _heap[0].DueMs - _nowMs();
        return wait <= 0 ? 0 : (int)Math.Min(wait, int.MaxValue);
    }

    /// <summary>Fires every timer that is due; returns how many fired.</summary>
    public int FireDue()
    {
        if (_count == 0)
        {
            return 0;
        }

        var now = _nowMs();
        var fired = 0;
        while (_count > 0 && _heap[0].DueMs <= now)
        {
            var timer = _heap[0];
            RemoveAt(0);
            fired++;
            timer.Target.Tell(timer.Message, ActorRefs.NoSender);
        }

        return fired;
    }

    internal void Arm(LoopTimer timer, long dueMs)
    {
        if (timer.Index >= 0)
        {
            // Re-armed while armed: move it to its new place.
            var earlier = dueMs < timer.DueMs;
            timer.DueMs = dueMs;
            if (earlier)
            {
                SiftUp(timer.Index);
            }
            else
            {
                SiftDown(timer.Index);
            }

            return;
        }

        if (_count == _heap.Length)
        {
            Array.Resize(ref _heap, _heap.Length * 2);
        }

        timer.DueMs = dueMs;
        timer.Index = _count;
        _heap[_count++] = timer;
        SiftUp(timer.Index);
    }

    internal void Disarm(LoopTimer timer)
    {
        if (timer.Index >= 0)
        {
            RemoveAt(timer.Index);
        }
    }

    private void RemoveAt(int index)
    {
        var removed = _heap[index];
        removed.Index = -1;
        _count--;
        if (index == _count)
        {
            _heap[_count] = null!;
            return;
        }

        var last = _heap[_count];
        _heap[_count] = null!;
        _heap[index] = last;
        last.Index = index;
        if (index > 0 && last.DueMs < _heap[(index - 1) / 2].DueMs)
        {
            SiftUp(index);
        }
        else
        {
            SiftDown(index);
        }
    }

    private void SiftUp(int index)
    {
        var timer = _heap[index];
        while (index > 0)
        {
            var parent = (index - 1) / 2;
            if (_heap[parent].DueMs <= timer.DueMs)
            {
                break;
            }

            Place(_heap[parent], index);
            index = parent;
        }

        Place(timer, index);
    }

    private void SiftDown(int index)
    {
        var timer = _heap[index];
        while (true)
        {
            var child = (2 * index) + 1;
            if (child >= _count)
            {
                break;
            }

            if (child + 1 < _count && _heap[child + 1].DueMs < _heap[child].DueMs)
            {
                child++;
            }

            if (timer.DueMs <= _heap[child].DueMs)
            {
                break;
            }

            Place(_heap[child], index);
            index = child;
        }

        Place(timer, index);
    }

    private void Place(LoopTimer timer, int index)
    {
        _heap[index] = timer;
        timer.Index = index;
    }
}

/// <summary>
/// One timer of a <see cref="LoopTimers"/>: tells its target its message when due. It can be
/// re-armed (<see cref="Start"/>) and cancelled any number of times, on the owning core thread.
/// </summary>
public sealed class LoopTimer
{
    private readonly LoopTimers _owner;

    internal LoopTimer(LoopTimers owner, IActorRef target, object message)
    {
        _owner = owner;
        Target = target;
        Message = message;
    }

    internal IActorRef Target { get; }

    internal object Message { get; }

    internal long DueMs { get; set; }

    /// <summary>The timer's slot in the heap, or -1 while it is not armed.</summary>
    internal int Index { get; set; } = -1;

    /// <summary>Whether the timer is armed and has not fired yet.</summary>
    public bool IsArmed => Index >= 0;

    /// <summary>Arms (or re-arms) the timer to fire <paramref name="after"/> from now.</summary>
    public void Start(TimeSpan after)
    {
        var ms = after <= TimeSpan.Zero ? 0 : (long)Math.Ceiling(after.TotalMilliseconds);
        _owner.Arm(this, _owner.NowMs + ms);
    }

    /// <summary>Disarms the timer; a message it already sent is not recalled. Idempotent.</summary>
    public void Cancel() => _owner.Disarm(this);
}
