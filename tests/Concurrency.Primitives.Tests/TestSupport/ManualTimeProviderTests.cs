using System;
using System.Threading;
using System.Threading.Tasks;
using FluentAssertions;
using Xunit;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>
/// The fake clock's own contract, which the timing tests rest on: timers fire only inside <see cref="ManualTimeProvider.Advance"/>,
/// except one armed for a moment the clock has already reached, which fires at once on the pool as a real timer does.
/// </summary>
public sealed class ManualTimeProviderTests
{
    [Fact]
    public async Task ATimerChangedToADueTimeOfZero_FiresWithoutAnAdvance()
    {
        var time = new ManualTimeProvider();
        var fired = Bounded.NewGate();
        using var timer = time.CreateTimer(_ => fired.TrySetResult(), null, TimeSpan.FromSeconds(1), Timeout.InfiniteTimeSpan);
        fired.Task.IsCompleted.Should().BeFalse("nothing is due before the clock moves");

        timer.Change(TimeSpan.Zero, Timeout.InfiniteTimeSpan);

        await fired.Task.OrHang();
        time.ArmedTimers.Should().Be(0, "a one-shot timer that fired is disarmed");
    }

    [Fact]
    public async Task ATimerCreatedDueAtZero_FiresWithoutAnAdvance_AndAPeriodicOneIsNextDueAPeriodLater()
    {
        var time = new ManualTimeProvider();
        var fires = 0;
        var first = Bounded.NewGate();
        var second = Bounded.NewGate();
        using var timer = time.CreateTimer(
            _ =>
            {
                if (Interlocked.Increment(ref fires) == 1)
                {
                    first.TrySetResult();
                }
                else
                {
                    second.TrySetResult();
                }
            },
            null,
            TimeSpan.Zero,
            TimeSpan.FromSeconds(1));

        await first.Task.OrHang();
        second.Task.IsCompleted.Should().BeFalse("the next firing is a period later");
        time.ArmedTimers.Should().Be(1);

        time.Advance(TimeSpan.FromSeconds(1));
        second.Task.IsCompleted.Should().BeTrue("a due timer fires inside Advance, synchronously");
    }

    [Fact]
    public void ATimerDueLater_FiresOnlyInsideTheAdvanceThatReachesIt()
    {
        var time = new ManualTimeProvider();
        var fired = 0;
        using var timer = time.CreateTimer(_ => Interlocked.Increment(ref fired), null, TimeSpan.FromSeconds(1), Timeout.InfiniteTimeSpan);

        time.Advance(TimeSpan.FromMilliseconds(999));
        Volatile.Read(ref fired).Should().Be(0);
        time.Advance(TimeSpan.FromMilliseconds(1));
        Volatile.Read(ref fired).Should().Be(1);
    }

    [Fact]
    public async Task AdvanceEachTimeArmedUntil_FiresWaitsArmedOneAfterAnother_UntilTheTaskCompletes()
    {
        var time = new ManualTimeProvider();
        var done = Bounded.NewGate();
        ITimer? second = null;
        using var first = time.CreateTimer(
            _ => second = time.CreateTimer(_ => done.TrySetResult(), null, TimeSpan.FromSeconds(5), Timeout.InfiniteTimeSpan),
            null,
            TimeSpan.FromSeconds(5),
            Timeout.InfiniteTimeSpan);

        await time.AdvanceEachTimeArmedUntil(done.Task, TimeSpan.FromSeconds(5)).OrHang();

        done.Task.IsCompleted.Should().BeTrue();
        time.GetTimestamp().Should().Be(TimeSpan.FromSeconds(10).Ticks, "two waits of 5 s, one after the other");
        second!.Dispose();
    }
}
