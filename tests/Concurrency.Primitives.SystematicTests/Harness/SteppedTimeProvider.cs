using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.SystematicTests.Harness;

/// <summary>
/// A clock that moves only when the scenario calls <see cref="AdvanceTo"/>, which fires (inline, in the advancing task)
/// every timer due by then; a timer armed for a time already reached fires on its own, in a task of its own. Under
/// Coyote this pins a deadline to one point of the scenario: a timer armed for the wrong time does not fire there, and
/// what waits on it waits forever, which Coyote reports as a deadlock.
/// </summary>
internal sealed class SteppedTimeProvider : TimeProvider
{
    private readonly object _lock = new();
    private readonly List<SteppedTimer> _timers = new();
    private long _now;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => Volatile.Read(ref _now);

    public override DateTimeOffset GetUtcNow() => new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddTicks(GetTimestamp());

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new SteppedTimer(this, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    /// <summary>Moves the clock to <paramref name="time"/> and runs the callback of every timer due by then, earliest first.</summary>
    public void AdvanceTo(TimeSpan time)
    {
        Volatile.Write(ref _now, time.Ticks);
        while (true)
        {
            SteppedTimer? due = null;
            lock (_lock)
            {
                _timers.RemoveAll(static timer => timer.Disposed);
                foreach (var timer in _timers)
                {
                    if (timer.DueAt <= time.Ticks && (due is null || timer.DueAt < due.DueAt))
                    {
                        due = timer;
                    }
                }

                if (due is null)
                {
                    return;
                }

                due.DueAt = long.MaxValue; // one-shot: a callback that wants another fire re-arms it
            }

            due.Fire();
        }
    }

    private sealed class SteppedTimer(SteppedTimeProvider clock, TimerCallback callback, object? state) : ITimer
    {
        public long DueAt = long.MaxValue;

        /// <summary>Set by <see cref="Dispose"/>: the timer never fires again and leaves the list at the next advance.</summary>
        public volatile bool Disposed;

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            long dueAt;
            if (Disposed)
            {
                return false;
            }

            lock (clock._lock)
            {
                dueAt = DueAt = dueTime == Timeout.InfiniteTimeSpan ? long.MaxValue : clock.GetTimestamp() + dueTime.Ticks;
                if (!clock._timers.Contains(this))
                {
                    clock._timers.Add(this);
                }
            }

            if (dueAt <= clock.GetTimestamp())
            {
                // Due already: it fires on its own, soon (as a real timer does), in a task of its own, unless re-armed first.
                _ = Task.Run(() =>
                {
                    lock (clock._lock)
                    {
                        if (DueAt != dueAt)
                        {
                            return;
                        }

                        DueAt = long.MaxValue;
                    }

                    Fire();
                });
            }

            return true;
        }

        public void Fire() => callback(state);

        /// <summary>
        /// Disarms the timer; <see cref="AdvanceTo"/> drops it from the list. No lock and no list here: a wait the library
        /// bounds with this clock (<c>Task.WaitAsync</c> with a time provider) disposes its timer from the thread that
        /// completes the wait, outside the scheduler's control, where the scheduler's lock does not exclude the scenario's
        /// own tasks (a removal there once raced a scan of the list and crashed the test host).
        /// </summary>
        public void Dispose()
        {
            Disposed = true;
            DueAt = long.MaxValue;
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return default;
        }
    }
}
