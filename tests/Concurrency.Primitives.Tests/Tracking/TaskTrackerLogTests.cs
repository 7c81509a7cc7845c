using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.Tracking;

/// <summary>
/// Each of the tracker's log events (README, "Logging and metrics") is written when its situation happens, at its level,
/// with the operation's name and id and the counts an operator reads.
/// </summary>
public sealed class TaskTrackerLogTests
{
    private static TaskTrackerOptions Options(RecordingLogger logger, TimeProvider? time = null) => new()
    {
        Name = "node",
        Logger = logger,
        TimeProvider = time,
    };

    [Fact]
    public async Task CancelledWork_IsLoggedByNameAndId_AtDebug()
    {
        var logger = new RecordingLogger();
        var tracker = new TaskTracker(Options(logger));

        await Task.WhenAny(tracker.Go(_ => Task.FromCanceled(new CancellationToken(canceled: true)), "sync")).OrHang();
        await tracker.CloseAsync().OrHang();

        var entry = logger.Entries.Should().ContainSingle(e => e.EventId == 1004).Which;
        entry.Level.Should().Be(LogLevel.Debug);
        entry["Tracker"].Should().Be("node");
        entry["Operation"].Should().Be("sync");
        entry["Id"].Should().BeOfType<long>().Which.Should().BePositive();
    }

    [Fact]
    public async Task AFailedRunAsync_IsLoggedAtDebug_ForItsCallerHoldsTheFailure_NotAsTheTrackersFailure()
    {
        var logger = new RecordingLogger();
        var tracker = new TaskTracker(Options(logger));

        await tracker.RunAsync(_ => throw new InvalidOperationException("request failed"), "request").Invoking(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>();
        await tracker.CloseAsync().OrHang();

        var entry = logger.Entries.Should().ContainSingle(e => e.EventId == 1010).Which;
        entry.Level.Should().Be(LogLevel.Debug);
        entry["Operation"].Should().Be("request");
        entry.Exception!.Message.Should().Be("request failed");
        logger.Entries.Should().NotContain(e => e.EventId == 1003, "the caller of RunAsync got the failure; the close does not throw it");
    }

    [Fact]
    public async Task TheClose_IsLoggedWithWhatIsOutstanding_AndTheCompletionWithTheFailuresRecorded()
    {
        var logger = new RecordingLogger();
        var tracker = new TaskTracker(Options(logger));
        var release = Bounded.NewGate();
        _ = tracker.Go(
            async _ =>
            {
                await release.Task;
                throw new InvalidOperationException("lost");
            },
            "flush");

        var close = tracker.CloseAsync();
        var started = logger.Entries.Should().ContainSingle(e => e.EventId == 1005).Which;
        started.Level.Should().Be(LogLevel.Information);
        started["Count"].Should().Be(1);
        logger.Entries.Should().NotContain(e => e.EventId == 1006, "the flush still runs");

        release.SetResult();
        await close.Invoking(c => c.OrHang()).Should().ThrowAsync<InvalidOperationException>();

        var completed = logger.Entries.Should().ContainSingle(e => e.EventId == 1006).Which;
        completed.Level.Should().Be(LogLevel.Information);
        completed["Failures"].Should().Be(1);
    }

    [Fact]
    public async Task ACleanCompletion_IsLoggedWithNoFailures()
    {
        var logger = new RecordingLogger();
        var tracker = new TaskTracker(Options(logger));

        await tracker.CloseAsync().OrHang();

        logger.Entries.Should().ContainSingle(e => e.EventId == 1005).Which["Count"].Should().Be(0);
        logger.Entries.Should().ContainSingle(e => e.EventId == 1006).Which["Failures"].Should().Be(0);
    }

    [Fact]
    public async Task ATimedOutClose_IsLoggedWithItsBoundAndWhatIsStillRunning()
    {
        var time = new ManualTimeProvider();
        var logger = new RecordingLogger();
        var tracker = new TaskTracker(Options(logger, time));
        var release = Bounded.NewGate();
        _ = tracker.Go(_ => release.Task, "flush");
        tracker.Add();

        var close = tracker.CloseAsync(TimeSpan.FromSeconds(3));
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(3));
        var timeout = (await close.Invoking(c => c.OrHang()).Should().ThrowAsync<TaskTrackerTimeoutException>()).Which;

        var entry = logger.Entries.Should().ContainSingle(e => e.EventId == 1007).Which;
        entry.Level.Should().Be(LogLevel.Warning);
        entry["Timeout"].Should().Be(TimeSpan.FromSeconds(3));
        entry["Count"].Should().Be(2, "one named operation and one unnamed registration");
        entry.Exception.Should().BeSameAs(timeout);
        release.SetResult();
        tracker.Done();
    }
}
