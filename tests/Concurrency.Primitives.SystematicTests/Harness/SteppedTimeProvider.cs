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

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            long dueAt;
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

        public void Dispose()
        {
            lock (clock._lock)
            {
                clock._timers.Remove(this);
            }
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return default;
        }
    }
}
