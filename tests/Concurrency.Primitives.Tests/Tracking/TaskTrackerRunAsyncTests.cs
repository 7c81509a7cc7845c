using System;
using System.Collections.Concurrent;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.Tracking;

/// <summary>The work's own task (RunAsync), failures as they happen (WorkFailed), and how many are kept.</summary>
public sealed class TaskTrackerRunAsyncTests
{
    [Fact]
    public async Task RunAsync_ReturnsTheWorksOwnTask_CompletedOnlyAfterItsRegistrationIsReleased()
    {
        var tracker = new TaskTracker();
        var release = Bounded.NewGate();

        var run = tracker.RunAsync(_ => release.Task, "job");

        run.IsCompleted.Should().BeFalse("unlike Go, awaiting RunAsync means the work");
        tracker.Count.Should().Be(1);
        release.SetResult();
        await run.OrHang();
        tracker.Count.Should().Be(0, "the task completes after the registration is released");
        await tracker.CloseAsync().OrHang();
    }

    [Fact]
    public async Task RunAsync_AFailureGoesToItsTask_AndIsNotThrownAgainByClose()
    {
        var tracker = new TaskTracker();
        var failures = new ConcurrentQueue<string>();
        tracker.WorkFailed += (_, e) => failures.Enqueue(e.Exception.Message);

        var run = tracker.RunAsync(_ => throw new InvalidOperationException("seen by its caller"), "job");

        await run.Invoking(r => r.OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("seen by its caller");
        await tracker.Invoking(t => t.CloseAsync().OrHang()).Should().NotThrowAsync("the failure was observed where it belongs");
        failures.Should().Equal("seen by its caller");
    }

    [Fact]
    public async Task RunAsync_ACancelledWorkTask_CancelsItsTask()
    {
        var tracker = new TaskTracker();

        var run = tracker.RunAsync(_ => Task.FromCanceled(new CancellationToken(canceled: true)));

        await run.Invoking(r => r.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        run.IsCanceled.Should().BeTrue();
        await tracker.CloseAsync().OrHang();
    }

    [Fact]
    public async Task RunAsync_WaitingForASlot_IsCancellable_AndWithdrawsTheRegistration()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { MaxConcurrency = 1 });
        var release = Bounded.NewGate();
        await tracker.Go(_ => release.Task);
        using var cancel = new CancellationTokenSource();
        var ran = false;

        var run = tracker.RunAsync(
            _ =>
            {
                ran = true;
                return Task.CompletedTask;
            },
            "waiting",
            cancel.Token);
        tracker.Count.Should().Be(2);
        await cancel.CancelAsync();

        await run.Invoking(r => r.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        tracker.Count.Should().Be(1);
        release.SetResult();
        await tracker.CloseAsync().OrHang();
        ran.Should().BeFalse();
    }

    [Fact]
    public async Task ChildRunAsync_ThroughAHandle_ReturnsTheChildsTask_WhileTheTrackerCloses()
    {
        var tracker = new TaskTracker();
        var childDone = Bounded.NewGate<int>();
        var parentMayGo = Bounded.NewGate();

        await tracker.Go(async (parent, _) =>
        {
            await parentMayGo.Task;
            var value = 0;
            await parent.RunAsync(_ =>
            {
                value = 42;
                return Task.CompletedTask;
            }, "child");
            childDone.SetResult(value);
        });
        var close = tracker.CloseAsync();
        parentMayGo.SetResult();

        (await childDone.Task.OrHang()).Should().Be(42, "the child was accepted during the close and awaited by its parent");
        await close.OrHang();
    }

    [Fact]
    public async Task WorkFailed_RaisesEveryFailure_AndAThrowingHandlerHidesNothingFromTheOthers()
    {
        var log = new RecordingLogger();
        var tracker = new TaskTracker(new TaskTrackerOptions { Logger = log });
        var seen = new ConcurrentQueue<(string, long, string)>();
        tracker.WorkFailed += (_, _) => throw new InvalidOperationException("handler");
        tracker.WorkFailed += (_, e) => seen.Enqueue((e.Name, e.Id, e.Exception.Message));

        await tracker.Go(_ => throw new InvalidOperationException("one"), "first");
        await tracker.Go(_ => throw new InvalidOperationException("two"), "second");
        await tracker.Invoking(t => t.CloseAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>();

        seen.OrderBy(e => e.Item2).Should().Equal(("first", 1L, "one"), ("second", 2L, "two"));
        log.Entries.Count(e => e.EventId == 1011).Should().Be(2);
    }

    [Fact]
    public async Task MaxRecordedFailures_KeepsTheFirstFailures_AndLogsTheRest()
    {
        var log = new RecordingLogger();
        var tracker = new TaskTracker(new TaskTrackerOptions { MaxRecordedFailures = 2, Logger = log });
        for (var i = 0; i < 5; i++)
        {
            var n = i;
            await tracker.Go(_ => throw new InvalidOperationException($"failure {n}"));
            await tracker.WaitAsync().OrHang(); // one at a time, so that "first" is well defined
        }

        var close = tracker.CloseAsync();
        await close.Invoking(c => c.OrHang()).Should().ThrowAsync<InvalidOperationException>();

        close.Exception!.InnerExceptions.Select(e => e.Message).Should().Equal("failure 0", "failure 1");
        log.Entries.Count(e => e.EventId == 1003).Should().Be(5, "every failure is logged, kept or not");
    }

    [Fact]
    public void MaxRecordedFailures_BelowZero_IsRejected_NamingTheOption()
    {
        var create = () => new TaskTracker(new TaskTrackerOptions { MaxRecordedFailures = -1 });

        create.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*MaxRecordedFailures*");
    }

    [Fact]
    public async Task ReadingCount_LeavesTheReleaseModeAlone()
    {
        // Count settles the releases not yet counted, but it must not switch the tracker to counting every release at
        // once (that is for whatever waits for the count): a debugger's display or a metric reading Count would
        // otherwise change how the tracker runs.
        var tracker = new TaskTracker();
        await tracker.Go(_ => Task.CompletedTask);

        _ = tracker.Count;

        tracker.ReleasesAreCountedAtOnce.Should().BeFalse();
        await tracker.WaitAsync().OrHang();
        tracker.ReleasesAreCountedAtOnce.Should().BeTrue("WaitAsync waits for the count, so it needs it exact");
    }

    [Fact]
    public async Task TheDebugEvents_ReportTheTrueCount()
    {
        var log = new RecordingLogger();
        var tracker = new TaskTracker(new TaskTrackerOptions { Logger = log });
        var holds = Enumerable.Range(0, 3).Select(_ => Bounded.NewGate()).ToArray();

        using (tracker.Register("lease"))
        {
            foreach (var hold in holds)
            {
                await tracker.Go(_ => hold.Task, "job");
            }

            for (var i = 0; i < holds.Length; i++)
            {
                var released = i + 1;
                holds[i].SetResult();
                await log.WaitFor(_ => log.Entries.Count(e => e.EventId == 1002) >= released).OrHang(); // one release at a time
            }
        }

        await tracker.CloseAsync().OrHang();
        var counts = log.Entries.Where(e => e.EventId is 1001 or 1002).Select(e => (e.EventId, (int)e["Count"]!)).ToList();
        counts.Should().Equal((1001, 1), (1001, 2), (1001, 3), (1001, 4), (1002, 3), (1002, 2), (1002, 1), (1002, 0));
    }
}
