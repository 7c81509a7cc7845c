using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Tracking;

/// <summary>Invariant 7: the optional concurrency limit (errgroup's SetLimit).</summary>
public sealed class TaskTrackerLimitTests
{
    [Fact]
    public async Task Go_AtTheLimit_IsRegisteredAtOnce_ButStartsOnlyWhenASlotFrees()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { MaxConcurrency = 1 });
        var releaseFirst = Bounded.NewGate();
        var secondStarted = Bounded.NewGate();
        await tracker.Go(_ => releaseFirst.Task, "first");

        var second = tracker.Go(_ =>
        {
            secondStarted.SetResult();
            return Task.CompletedTask;
        }, "second");

        second.IsCompleted.Should().BeFalse("no slot is free");
        tracker.Count.Should().Be(2, "waiting work is already registered, so a close waits for it");
        tracker.GetOutstanding().Single(o => o.Name == "second").IsWaitingForSlot.Should().BeTrue();
        secondStarted.Task.IsCompleted.Should().BeFalse();

        releaseFirst.SetResult();
        await second.OrHang();
        await secondStarted.Task.OrHang();
        await tracker.CloseAsync().OrHang();
    }

    [Theory]
    [InlineData(null)]
    [InlineData(1)]
    public async Task Go_WithAnAlreadyCancelledToken_RegistersAndRunsNothing(int? limit)
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { MaxConcurrency = limit });
        var runs = 0;

        await tracker.Invoking(t => t.Go(_ =>
        {
            Interlocked.Increment(ref runs);
            return Task.CompletedTask;
        }, "cancelled", new CancellationToken(canceled: true))).Should().ThrowAsync<OperationCanceledException>();

        tracker.Count.Should().Be(0);
        await tracker.CloseAsync().OrHang();
        runs.Should().Be(0, "a call cancelled before it begins starts nothing, even with a slot free");
    }

    [Fact]
    public async Task TryGo_AtTheLimit_ReturnsFalse_WithoutRegistering()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { MaxConcurrency = 1 });
        var release = Bounded.NewGate();
        tracker.TryGo(_ => release.Task).Should().BeTrue();

        tracker.TryGo(_ => Task.CompletedTask).Should().BeFalse();

        tracker.Count.Should().Be(1);
        release.SetResult();
        await tracker.WaitAsync().OrHang();
        tracker.TryGo(_ => Task.CompletedTask).Should().BeTrue("the slot came back");
        await tracker.CloseAsync().OrHang();
    }

    [Fact]
    public async Task Go_WaitingForASlot_IsCancellable_AndWithdrawsItsRegistration()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { MaxConcurrency = 1 });
        var release = Bounded.NewGate();
        var neverRuns = false;
        await tracker.Go(_ => release.Task);
        using var cancel = new CancellationTokenSource();

        var waiting = tracker.Go(_ =>
        {
            neverRuns = true;
            return Task.CompletedTask;
        }, "waiting", cancel.Token);
        await cancel.CancelAsync();

        await waiting.Invoking(w => w.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        tracker.Count.Should().Be(1);
        release.SetResult();
        await tracker.CloseAsync().OrHang();
        neverRuns.Should().BeFalse();
    }

    [Fact]
    public async Task ChildWork_DoesNotWaitForASlot_SoAParentAwaitingItsChildCannotDeadlock()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { MaxConcurrency = 1 });
        var childRan = Bounded.NewGate();

        await tracker.Go(async (parent, _) =>
        {
            // The parent holds the only slot; errgroup would block here forever.
            parent.Go(_ =>
            {
                childRan.SetResult();
                return Task.CompletedTask;
            });
            await childRan.Task;
        });

        await childRan.Task.OrHang();
        await tracker.CloseAsync().OrHang();
        tracker.TryGo(_ => Task.CompletedTask).Should().BeFalse();
    }

    [Fact]
    public async Task WorkThatGotItsSlot_IsNoLongerReportedAsWaitingForOne()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { MaxConcurrency = 1 });
        var releaseFirst = Bounded.NewGate();
        var releaseSecond = Bounded.NewGate();
        await tracker.Go(_ => releaseFirst.Task, "first");
        var second = tracker.Go(_ => releaseSecond.Task, "second");
        tracker.GetOutstanding().Single(o => o.Name == "second").IsWaitingForSlot.Should().BeTrue();

        releaseFirst.SetResult();
        await second.OrHang(); // started: it holds the slot now

        var running = tracker.GetOutstanding().Single(o => o.Name == "second");
        running.IsWaitingForSlot.Should().BeFalse("it runs");
        running.ToString().Should().Contain("(work, ");
        releaseSecond.SetResult();
        await tracker.CloseAsync().OrHang();
    }

    [Fact]
    public async Task WorkOnAReusedRecord_StartsClean_NotWaitingForASlot()
    {
        var tracker = new TaskTracker();
        tracker.Register("lease").Dispose(); // the newest record: pooled at once, and the next registration takes it
        var release = Bounded.NewGate();

        _ = tracker.Go(_ => release.Task, "work");

        tracker.GetOutstanding().Single().IsWaitingForSlot.Should().BeFalse("a tracker without MaxConcurrency has no slots to wait for");
        release.SetResult();
        await tracker.CloseAsync().OrHang();
    }

    [Fact]
    public async Task ChildTryGo_NeedsNoSlot_EvenWhenItsParentHoldsTheOnlyOne()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { MaxConcurrency = 1 });
        var childRan = Bounded.NewGate();
        var accepted = Bounded.NewGate<bool>();

        await tracker.Go((operation, _) =>
        {
            accepted.SetResult(operation.TryGo(_ =>
            {
                childRan.SetResult();
                return Task.CompletedTask;
            }, "child"));
            return childRan.Task;
        }, "parent");

        (await accepted.Task.OrHang()).Should().BeTrue("children are not limited by MaxConcurrency (a parent waiting for one would deadlock)");
        await childRan.Task.OrHang();
        await tracker.CloseAsync().OrHang();
    }

    [Fact]
    public async Task AtMostTheLimitRuns_AtOnce()
    {
        const int limit = 3;
        var tracker = new TaskTracker(new TaskTrackerOptions { MaxConcurrency = limit });
        var running = 0;
        var peak = 0;
        var gates = Enumerable.Range(0, 12).Select(_ => Bounded.NewGate()).ToArray();
        var starts = Enumerable.Range(0, 12).Select(_ => Bounded.NewGate()).ToArray();
        var go = new Task[12];
        for (var i = 0; i < gates.Length; i++)
        {
            var index = i;
            go[i] = tracker.Go(async _ =>
            {
                var now = Interlocked.Increment(ref running);
                InterlockedMax(ref peak, now);
                starts[index].SetResult();
                await gates[index].Task;
                Interlocked.Decrement(ref running);
            });
        }

        for (var i = 0; i < gates.Length; i++)
        {
            await starts[i].Task.OrHang();
            gates[i].SetResult();
        }

        await Task.WhenAll(go).OrHang();
        await tracker.CloseAsync().OrHang();
        peak.Should().BeLessThanOrEqualTo(limit);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }
}
