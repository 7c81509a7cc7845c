using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>
/// A clock that moves only when a test calls <see cref="Advance"/>. Timers fire synchronously inside
/// <see cref="Advance"/>, in due order, so every deadline in a test is reached exactly when the test says. A timer
/// created or changed to a due time the clock has already reached (a due time of zero) fires at once on the thread
/// pool, as a real timer does: code that arms a timer for a moment already past is not left waiting for an
/// <see cref="Advance"/> the test may never make.
/// </summary>
public sealed class ManualTimeProvider : TimeProvider
{
    private readonly object _gate = new();
    private readonly List<ManualTimer> _timers = new();
    private readonly List<(int Count, TaskCompletionSource Signal)> _armWaiters = new();
    private DateTimeOffset _utcNow = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private long _ticks;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    /// <summary>How many timers are armed (created, not disposed, with a finite due time).</summary>
    public int ArmedTimers
    {
        get
        {
            lock (_gate)
            {
                return _timers.Count(t => t.DueAt is not null);
            }
        }
    }

    /// <summary>Completes once at least <paramref name="count"/> timers are armed: the code under test has started its wait.</summary>
    public Task WhenTimersArmed(int count = 1)
    {
        lock (_gate)
        {
            if (_timers.Count(t => t.DueAt is not null) >= count)
            {
                return Task.CompletedTask;
            }

            var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _armWaiters.Add((count, signal));
            return signal.Task;
        }
    }

    public override DateTimeOffset GetUtcNow()
    {
        lock (_gate)
        {
            return _utcNow;
        }
    }

    public override long GetTimestamp()
    {
        lock (_gate)
        {
            return _ticks;
        }
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new ManualTimer(this, callback, state);
        lock (_gate)
        {
            _timers.Add(timer);
        }

        timer.Change(dueTime, period);
        return timer;
    }

    /// <summary>
    /// Until <paramref name="done"/> completes: each time at least <paramref name="timers"/> timers are armed, moves the
    /// clock forward by <paramref name="delta"/>. For code that arms its bounded waits one after another, where a wait that
    /// has just ended may not yet have disposed its timer when the next wait arms its own: a count of armed timers then
    /// says how many there are, not which, and one advance could fire the stale one and leave the new one armed.
    /// The caller bounds the returned task (it completes when <paramref name="done"/> does).
    /// </summary>
    public async Task AdvanceEachTimeArmedUntil(Task done, TimeSpan delta, int timers = 1)
    {
        while (!done.IsCompleted)
        {
            await Task.WhenAny(done, WhenTimersArmed(timers)).ConfigureAwait(false);
            if (!done.IsCompleted)
            {
                Advance(delta);
            }
        }
    }

    /// <summary>Completes the waiters of <see cref="WhenTimersArmed"/> whose count is reached.</summary>
    private void ReleaseArmWaitersLocked()
    {
        var armed = _timers.Count(t => t.DueAt is not null);
        foreach (var waiter in _armWaiters.Where(w => w.Count <= armed).ToList())
        {
            _armWaiters.Remove(waiter);
            waiter.Signal.TrySetResult();
        }
    }

    /// <summary>Moves the clock forward and fires, in order, every timer that falls due.</summary>
    public void Advance(TimeSpan delta)
    {
        if (delta < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(delta));
        }

        long target;
        lock (_gate)
        {
            target = _ticks + delta.Ticks;
        }

        while (true)
        {
            ManualTimer? due;
            lock (_gate)
            {
                due = _timers.Where(t => t.DueAt is { } at && at <= target).OrderBy(t => t.DueAt).FirstOrDefault();
                if (due is null)
                {
                    _utcNow += TimeSpan.FromTicks(target - _ticks);
                    _ticks = target;
                    return;
                }

                var at = due.DueAt!.Value;
                _utcNow += TimeSpan.FromTicks(at - _ticks);
                _ticks = at;
                due.DueAt = due.NextDueAfter(at);
            }

            due.Fire();
        }
    }

    private sealed class ManualTimer : ITimer
    {
        private readonly ManualTimeProvider _owner;
        private readonly TimerCallback _callback;
        private readonly object? _state;

        public ManualTimer(ManualTimeProvider owner, TimerCallback callback, object? state)
        {
            _owner = owner;
            _callback = callback;
            _state = state;
        }

        public long? DueAt { get; set; }

        public TimeSpan? Period { get; private set; }

        public void Fire() => _callback(_state);

        /// <summary>Fires on a pool thread, as a real timer whose due time has passed does.</summary>
        public void FireOnPool() => ThreadPool.UnsafeQueueUserWorkItem(static timer => timer.Fire(), this, preferLocal: false);

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            bool fireNow;
            lock (_owner._gate)
            {
                fireNow = ChangeLocked(dueTime, period, _owner._ticks);
                _owner.ReleaseArmWaitersLocked();
            }

            if (fireNow)
            {
                FireOnPool();
            }

            return true;
        }

        /// <summary>
        /// Sets the due time and period. Returns true when the due time is already reached: the caller then fires the
        /// timer on the pool (outside the lock); a periodic one is next due a period later, a one-shot one is disarmed.
        /// </summary>
        private bool ChangeLocked(TimeSpan dueTime, TimeSpan period, long now)
        {
            Period = period == Timeout.InfiniteTimeSpan || period == TimeSpan.Zero ? null : period;
            if (dueTime == Timeout.InfiniteTimeSpan)
            {
                DueAt = null;
                return false;
            }

            if (dueTime > TimeSpan.Zero)
            {
                DueAt = now + dueTime.Ticks;
                return false;
            }

            DueAt = NextDueAfter(now);
            return true;
        }

        /// <summary>When a timer that fires at <paramref name="at"/> is next due: a period later, or never for a one-shot timer.</summary>
        public long? NextDueAfter(long at) => Period is { } period ? at + Math.Max(1, period.Ticks) : null;

        public void Dispose()
        {
            lock (_owner._gate)
            {
                DueAt = null;
                _owner._timers.Remove(this);
            }
        }

        public System.Threading.Tasks.ValueTask DisposeAsync()
        {
            Dispose();
            return default;
        }
    }
}
