using System.Collections.Concurrent;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;

namespace Relay.Host.Logging.Internal;

/// <summary>
/// INTERNAL API. Writes formatted events to a <see cref="TextWriter"/> from a thread of its
/// own, a burst of events at a time with one flush (one write(2) on a stream) per burst.
/// <see cref="Emit"/> only queues the event: the caller (Akka's logger actor) neither
/// renders nor writes.
/// </summary>
/// <remarks>
/// Under one CircuitClosed line per connection, formatting and flushing each line where it
/// was emitted cost a write(2) per line on the logger's thread; a busy relay now pays one
/// per <see cref="Linger"/> at most. The writer thread sleeps while nothing is queued: the
/// first event after a burst wakes it, and it waits <see cref="Linger"/> for the rest of the
/// burst before it drains. <see cref="Dispose"/> drains what is queued before it returns,
/// so the lines logged before exit (a shutdown's CircuitClosed and RelayStopped) are
/// written. Order is kept: one queue, one writer.
/// </remarks>
internal sealed class BatchingTextSink : ILogEventSink, IDisposable
{
    /// <summary>How long a line may wait for others to share its write.</summary>
    public static readonly TimeSpan Linger = TimeSpan.FromMilliseconds(10);

    private readonly TextWriter _output;
    private readonly ITextFormatter _formatter;
    private readonly ConcurrentQueue<LogEvent> _queue = new();
    // Neither wait spins (spinCount 0): SemaphoreSlim and a default ManualResetEventSlim spin
    // with sched_yield before they block, and with one wake per burst of lines this thread's
    // spinning was 3 sched_yield calls per connection under Connection: close load (strace -c).
    private readonly ManualResetEventSlim _wake = new(false, spinCount: 0);
    private readonly ManualResetEventSlim _stopping = new(false, spinCount: 0);
    private readonly Thread _writer;
    private int _signalled;

    public BatchingTextSink(TextWriter output, ITextFormatter formatter)
    {
        _output = output;
        _formatter = formatter;
        _writer = new Thread(Run) { IsBackground = true, Name = "relay-log-writer" };
        _writer.Start();
    }

    public void Emit(LogEvent logEvent)
    {
        _queue.Enqueue(logEvent);
        // Only the first event since the writer last drained wakes it; the others ride along.
        if (Interlocked.Exchange(ref _signalled, 1) == 0)
        {
            _wake.Set();
        }
    }

    public void Dispose()
    {
        if (_stopping.IsSet)
        {
            return;
        }

        _stopping.Set();
        _wake.Set();
        _writer.Join();
        Drain();
    }

    private void Run()
    {
        while (!_stopping.IsSet)
        {
            _wake.Wait();
            _wake.Reset(); // before the linger: whoever queues after it sets it again (see _signalled)
            _stopping.Wait(Linger);
            // Cleared before the queue is read, so an event queued while it drains wakes it again.
            Volatile.Write(ref _signalled, 0);
            Drain();
        }
    }

    private void Drain()
    {
        var wrote = false;
        while (_queue.TryDequeue(out var logEvent))
        {
            try
            {
                _formatter.Format(logEvent, _output);
                wrote = true;
            }
            catch (Exception e)
            {
                // One event that cannot be written must not stop the others.
                Serilog.Debugging.SelfLog.WriteLine("Relay log writer dropped an event: {0}", e);
            }
        }

        if (wrote)
        {
            try
            {
                _output.Flush();
            }
            catch (Exception e)
            {
                Serilog.Debugging.SelfLog.WriteLine("Relay log writer could not flush: {0}", e);
            }
        }
    }
}
