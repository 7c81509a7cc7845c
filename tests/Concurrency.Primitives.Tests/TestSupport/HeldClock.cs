using System;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>
/// A <see cref="ManualTimeProvider"/> whose next timestamp read can be held: the code under test that reads it (a gate's
/// stop reads the clock first when it begins, and again once it has stopped, to record its duration) waits, on its own
/// thread, until the test releases it. A test uses it to stop the code at that point and look at what it has done so far.
/// </summary>
public sealed class HeldClock : TimeProvider
{
    private Hold? _next;

    /// <summary>The clock it reads; its timers are this clock's.</summary>
    public ManualTimeProvider Clock { get; } = new();

    public override long TimestampFrequency => Clock.TimestampFrequency;

    /// <summary>Holds the next timestamp read, whichever thread makes it, until <see cref="Hold.Release"/>.</summary>
    public Hold HoldNextTimestamp()
    {
        var hold = new Hold();
        Volatile.Write(ref _next, hold);
        return hold;
    }

    public override long GetTimestamp()
    {
        if (Interlocked.Exchange(ref _next, null) is { } hold)
        {
            hold.Enter();
        }

        return Clock.GetTimestamp();
    }

    public override DateTimeOffset GetUtcNow() => Clock.GetUtcNow();

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        Clock.CreateTimer(callback, state, dueTime, period);

    /// <summary>One held read: <see cref="Entered"/> completes when the code under test waits in it.</summary>
    public sealed class Hold
    {
        private readonly TaskCompletionSource _entered = Bounded.NewGate();
        private readonly TaskCompletionSource _released = Bounded.NewGate();

        public Task Entered => _entered.Task;

        public void Release() => _released.TrySetResult();

        internal void Enter()
        {
            _entered.TrySetResult();
#pragma warning disable VSTHRD002 // holding the reading thread is the point: the test releases it from its own thread
            if (!_released.Task.Wait(Bounded.HangLimit))
#pragma warning restore VSTHRD002
            {
                throw new TimeoutException("The test never released the held timestamp read.");
            }
        }
    }
}
