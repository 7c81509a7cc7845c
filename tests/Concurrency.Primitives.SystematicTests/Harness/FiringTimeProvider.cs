using System;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Coyote.Specifications;

namespace Concurrency.Primitives.SystematicTests.Harness;

/// <summary>
/// A clock whose timers fire under the Coyote scheduler: arming a timer starts a task that, whenever the scheduler runs
/// it, moves the clock to the timer's due time and calls the callback (unless the timer was re-armed or disposed
/// meanwhile). Every interleaving of a deadline with the code it races is then one the scheduler can choose.
/// </summary>
internal sealed class FiringTimeProvider : TimeProvider
{
    private long _now;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => Volatile.Read(ref _now);

    public override DateTimeOffset GetUtcNow() => new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddTicks(GetTimestamp());

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new FiringTimer(this, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    private void AdvanceTo(long timestamp)
    {
        var now = Volatile.Read(ref _now);
        while (timestamp > now)
        {
            var seen = Interlocked.CompareExchange(ref _now, timestamp, now);
            if (seen == now)
            {
                return;
            }

            now = seen;
        }
    }

    private sealed class FiringTimer(FiringTimeProvider clock, TimerCallback callback, object? state) : ITimer
    {
        private int _generation;

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            var generation = Interlocked.Increment(ref _generation);
            if (dueTime == Timeout.InfiniteTimeSpan)
            {
                return true;
            }

            var dueAt = clock.GetTimestamp() + dueTime.Ticks;
            _ = Task.Run(async () =>
            {
                await Task.Yield();
                if (Volatile.Read(ref _generation) == generation)
                {
                    clock.AdvanceTo(dueAt);
                    try
                    {
                        callback(state);
                    }
                    catch (Exception exception)
                    {
                        // A timer callback that throws would crash a real process: report it as the bug it is.
                        Specification.Assert(false, $"A timer callback threw: {exception}");
                    }
                }
            });
            return true;
        }

        public void Dispose() => Interlocked.Increment(ref _generation);

        public ValueTask DisposeAsync()
        {
            Dispose();
            return default;
        }
    }
}
