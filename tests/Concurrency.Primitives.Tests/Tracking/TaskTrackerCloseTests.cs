using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.Tracking;

/// <summary>Invariants 5 and 6: bounded close that names what is outstanding; failures never lost.</summary>
public sealed class TaskTrackerCloseTests
{
    [Fact]
    public async Task CloseAsync_TimesOut_NamingEachOutstandingOperationWithItsAge()
    {
        var time = new ManualTimeProvider();
        var tracker = new TaskTracker(new TaskTrackerOptions { Name = "node", TimeProvider = time });
        var release = Bounded.NewGate();
        using var flush = tracker.Register("db-flush");
        time.Advance(TimeSpan.FromSeconds(2));
        await tracker.Go(_ => release.Task, "build");
        tracker.Add();

        var close = tracker.CloseAsync(TimeSpan.FromSeconds(5));
        time.Advance(TimeSpan.FromSeconds(5));

        var timeout = (await close.Invoking(c => c.OrHang()).Should().ThrowAsync<TaskTrackerTimeoutException>()).Which;
        timeout.Name.Should().Be("node");
        timeout.Timeout.Should().Be(TimeSpan.FromSeconds(5));
        timeout.Outstanding.Select(o => (o.Name, o.Kind, o.Age)).Should().Equal(
            ("db-flush", TrackedOperationKind.Lease, TimeSpan.FromSeconds(7)),
            ("build", TrackedOperationKind.Work, TimeSpan.FromSeconds(5)));
        timeout.UnnamedCount.Should().Be(1);
        timeout.Message.Should().Contain("db-flush #1 (lease, age 7 s)").And.Contain("build #2 (work, age 5 s)").And.Contain("1 anonymous Add()");
        tracker.IsClosing.Should().BeTrue("a timed-out close leaves the tracker closing");
        tracker.IsCompleted.Should().BeFalse();

        release.SetResult();
        flush.Dispose();
        tracker.Done();
        await tracker.CloseAsync().OrHang();
    }

    [Fact]
    public async Task CloseTimeout_WithStackTracesOptedIn_SaysWhereEachOperationWasRegistered()
    {
        var time = new ManualTimeProvider();
        var tracker = new TaskTracker(new TaskTrackerOptions { TimeProvider = time, CaptureRegistrationStackTraces = true });
        using var lease = tracker.Register("leaked");

        var close = tracker.CloseAsync(TimeSpan.FromSeconds(1));
        time.Advance(TimeSpan.FromSeconds(1));

        var timeout = (await close.Invoking(c => c.OrHang()).Should().ThrowAsync<TaskTrackerTimeoutException>()).Which;
        timeout.Outstanding.Single().RegistrationStackTrace.Should().Contain(nameof(CloseTimeout_WithStackTracesOptedIn_SaysWhereEachOperationWasRegistered));
        timeout.Message.Should().Contain("registered at:");
    }

    [Fact]
    public void Snapshot_WithoutOptIn_CarriesNoStackTrace()
    {
        var tracker = new TaskTracker();
        using var lease = tracker.Register("plain");

        tracker.GetOutstanding().Single().RegistrationStackTrace.Should().BeNull();
    }

    [Fact]
    public async Task CloseAsync_Cancelled_AbandonsOnlyTheWait()
    {
        var tracker = new TaskTracker();
        var lease = tracker.Register("slow");
        using var cancel = new CancellationTokenSource();

        var close = tracker.CloseAsync(cancel.Token);
        await cancel.CancelAsync();

        await close.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        tracker.IsClosing.Should().BeTrue();
        lease.IsActive.Should().BeTrue();
        lease.Dispose();
        await tracker.CloseAsync().OrHang();
        tracker.IsCompleted.Should().BeTrue();
    }

    [Fact]
    public async Task ConcurrentClosers_ShareOneCompletion()
    {
        var tracker = new TaskTracker();
        var lease = tracker.Register();

        var first = tracker.CloseAsync();
        var second = tracker.CloseAsync(TimeSpan.FromMinutes(5));
        lease.Dispose();

        await Task.WhenAll(first, second).OrHang();
    }

    [Fact]
    public async Task FailuresOfTrackedWork_AreAllThrownByClose_InOrder()
    {
        var log = new RecordingLogger();
        var tracker = new TaskTracker(new TaskTrackerOptions { Logger = log });
        var firstMayFail = Bounded.NewGate();
        var firstFailed = Bounded.NewGate();
        await tracker.Go(async _ =>
        {
            await firstMayFail.Task;
            throw new InvalidOperationException("first");
        });
        await tracker.Go(async _ =>
        {
            await firstFailed.Task;
            throw new ArgumentException("second");
        });
        await tracker.Go(_ => Task.CompletedTask);

        var close = tracker.CloseAsync();
        firstMayFail.SetResult();
        await log.WaitFor(e => e.EventId == 1003).OrHang();
        firstFailed.SetResult();

        // As with Task.WhenAll: await throws the first failure, and the task holds them all, in the order they happened.
        (await close.Invoking(c => c.OrHang()).Should().ThrowAsync<InvalidOperationException>()).WithMessage("first");
        close.Exception!.InnerExceptions.Select(e => e.Message).Should().Equal("first", "second");
        tracker.Completion.Exception!.InnerExceptions.Select(e => e.Message).Should().Equal("first", "second");
        tracker.IsCompleted.Should().BeTrue();
        tracker.Count.Should().Be(0);
    }

    [Fact]
    public async Task WorkThatThrowsBeforeReturningATask_IsRecordedAsAFailure()
    {
        var tracker = new TaskTracker();
        await tracker.Go(_ => throw new InvalidOperationException("synchronous"));

        await tracker.Invoking(t => t.CloseAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("synchronous");
    }

    [Fact]
    public async Task WorkThatReturnsANullTask_IsRecordedAsAFailureThatSaysWhatToDo()
    {
        var tracker = new TaskTracker();
        #pragma warning disable VSTHRD114 // the test returns null on purpose
        await tracker.Go(_ => null!, "careless");
#pragma warning restore VSTHRD114

        await tracker.Invoking(t => t.CloseAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("*'careless' returned a null Task*");
    }

    [Fact]
    public async Task CancelledWork_IsNotAFailure()
    {
        var tracker = new TaskTracker();
        await tracker.Go(stopping =>
        {
            var cancelled = Bounded.NewGate();
            stopping.Register(() => cancelled.SetCanceled(stopping));
            return cancelled.Task;
        });

        await tracker.CloseAsync().OrHang();
        tracker.IsCompleted.Should().BeTrue();
    }

    [Fact]
    public async Task CancelOnFirstFailure_CancelsTheClosingToken_LikeErrgroup()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { CancelOnFirstFailure = true });
        var sibling = Bounded.NewGate();
        await tracker.Go(stopping =>
        {
            stopping.Register(() => sibling.SetResult());
            return sibling.Task;
        });

        await tracker.Go(_ => throw new InvalidOperationException("boom"));

        await sibling.Task.OrHang();
        tracker.ClosingToken.IsCancellationRequested.Should().BeTrue();
        tracker.IsClosing.Should().BeFalse("a failure cancels the token but does not close the tracker");
        await tracker.Invoking(t => t.CloseAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("boom");
    }

    [Fact]
    public async Task WithoutCancelOnFirstFailure_AFailureLeavesTheClosingTokenAlone()
    {
        var tracker = new TaskTracker();
        await tracker.Go(_ => throw new InvalidOperationException("boom"));
        await tracker.WaitAsync().OrHang();

        tracker.ClosingToken.IsCancellationRequested.Should().BeFalse();
        await tracker.Invoking(t => t.CloseAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("boom");
    }

    [Fact]
    public async Task AThrowingClosingTokenCallback_IsSurfacedByClose()
    {
        var tracker = new TaskTracker();
        tracker.ClosingToken.Register(() => throw new InvalidOperationException("callback"));

        await tracker.Invoking(t => t.CloseAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("callback");
    }

    [Fact]
    public async Task DisposeAsync_WithFailures_NeverThrows_LogsThem_AndCompletionHoldsThem()
    {
        var log = new RecordingLogger();
        var tracker = new TaskTracker(new TaskTrackerOptions { Logger = log });
        await tracker.Go(_ => throw new InvalidOperationException("unseen"));

        await tracker.Invoking(t => t.DisposeAsync().OrHang()).Should().NotThrowAsync();

        log.Entries.Should().Contain(e => e.EventId == 1009 && e.Level == LogLevel.Error);
        tracker.Completion.IsFaulted.Should().BeTrue();
        tracker.Completion.Exception!.InnerException!.Message.Should().Be("unseen");
        await tracker.Invoking(t => t.CloseAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>("a later close still reports them");
    }

    [Fact]
    public async Task DisposeAsync_WithStuckWork_ReturnsAfterTheShutdownTimeout_WithoutThrowing_AndLogsEveryStraggler()
    {
        var time = new ManualTimeProvider();
        var log = new RecordingLogger();
        var tracker = new TaskTracker(new TaskTrackerOptions { Name = "jobs", TimeProvider = time, Logger = log, ShutdownTimeout = TimeSpan.FromSeconds(3) });
        using var lease = tracker.Register("stuck lease");
        await tracker.Go(_ => Bounded.NewGate().Task, "stuck job"); // ignores cancellation, never finishes

        var dispose = tracker.DisposeAsync().AsTask();
        await time.WhenTimersArmed().OrHang();
        dispose.IsCompleted.Should().BeFalse();
        time.Advance(TimeSpan.FromSeconds(3));

        await dispose.Invoking(d => d.OrHang()).Should().NotThrowAsync();
        var report = log.Entries.Single(e => e.EventId == 1008);
        report.Level.Should().Be(LogLevel.Error);
        var timeout = report.Exception.Should().BeOfType<TaskTrackerTimeoutException>().Which;
        timeout.Outstanding.Select(o => o.Name).Should().Equal("stuck lease", "stuck job");
        timeout.Message.Should().Contain("jobs").And.Contain("stuck job");
        tracker.Completion.IsCompleted.Should().BeFalse("the work keeps running; the tracker completes when it ends");
    }

    [Fact]
    public async Task DisposeAsync_AfterACloseTheCallerGaveUpOn_WaitsOnlyForWhatIsLeftOfTheShutdownTimeout()
    {
        // A host's stop closes the tracker and gives up at its own deadline; the container's dispose follows. The
        // dispose waits for the rest of the tracker's bound, counted from when the close began, not a second full one.
        var time = new ManualTimeProvider();
        var log = new RecordingLogger();
        var tracker = new TaskTracker(new TaskTrackerOptions { Name = "jobs", TimeProvider = time, Logger = log, ShutdownTimeout = TimeSpan.FromSeconds(3) });
        using var lease = tracker.Register("stuck");
        using var hostGivesUp = new CancellationTokenSource();
        var close = tracker.CloseAsync(hostGivesUp.Token);
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(2));
        await hostGivesUp.CancelAsync();
        await close.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();

        var dispose = tracker.DisposeAsync().AsTask();
        await time.WhenTimersArmed().OrHang();
        dispose.IsCompleted.Should().BeFalse("one second of the bound is left");
        time.Advance(TimeSpan.FromSeconds(1));

        await dispose.Invoking(d => d.OrHang()).Should().NotThrowAsync();
        var report = log.Entries.Single(e => e.EventId == 1008);
        report.Exception.Should().BeOfType<TaskTrackerTimeoutException>().Which.Outstanding.Single().Name.Should().Be("stuck");
    }

    [Fact]
    public async Task DisposeAsync_AfterACloseThatTimedOut_ReturnsAtOnce_AndStillNamesTheStragglers()
    {
        var time = new ManualTimeProvider();
        var log = new RecordingLogger();
        var tracker = new TaskTracker(new TaskTrackerOptions { Name = "jobs", TimeProvider = time, Logger = log, ShutdownTimeout = TimeSpan.FromSeconds(3) });
        using var lease = tracker.Register("stuck");
        var close = tracker.CloseAsync();
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(3));
        await close.Invoking(c => c.OrHang()).Should().ThrowAsync<TaskTrackerTimeoutException>();

        await tracker.Invoking(t => t.DisposeAsync().OrHang()).Should().NotThrowAsync("the bound was spent by the close");
        log.Entries.Single(e => e.EventId == 1008).Exception.Should().BeOfType<TaskTrackerTimeoutException>().Which.Outstanding.Single().Name.Should().Be("stuck");
        time.ArmedTimers.Should().Be(0);
    }

    [Fact]
    public async Task CloseAsync_WithoutATimeout_UsesTheShutdownTimeout()
    {
        var time = new ManualTimeProvider();
        var tracker = new TaskTracker(new TaskTrackerOptions { TimeProvider = time, ShutdownTimeout = TimeSpan.FromSeconds(3) });
        using var lease = tracker.Register("stuck");

        var close = tracker.CloseAsync();
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(3));

        var timeout = (await close.Invoking(d => d.OrHang()).Should().ThrowAsync<TaskTrackerTimeoutException>()).Which;
        timeout.Outstanding.Single().Name.Should().Be("stuck");
        timeout.Timeout.Should().Be(TimeSpan.FromSeconds(3));
    }

    [Fact]
    public async Task AfterClose_TopLevelRegistrationsThrowClosed_NotObjectDisposed()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { Name = "jobs" });
        await tracker.CloseAsync().OrHang();

        tracker.Invoking(t => { _ = t.Go(_ => Task.CompletedTask); }).Should().Throw<ClosedException>().Which.Name.Should().Be("jobs");
        tracker.Invoking(t => t.Register()).Should().Throw<ClosedException>();
        tracker.Invoking(t => { _ = t.RunAsync(_ => Task.CompletedTask); }).Should().Throw<ClosedException>();
    }

    [Fact]
    public async Task AfterDispose_TopLevelRegistrationsThrowObjectDisposed()
    {
        var tracker = new TaskTracker();
        await tracker.DisposeAsync();

        tracker.Invoking(t => { _ = t.Go(_ => Task.CompletedTask); }).Should().Throw<ObjectDisposedException>();
        tracker.Invoking(t => t.Register()).Should().Throw<ObjectDisposedException>();
        tracker.Invoking(t => t.Add()).Should().Throw<ObjectDisposedException>();
        tracker.TryGo(_ => Task.CompletedTask).Should().BeFalse();
        tracker.Count.Should().Be(0);
        await tracker.DisposeAsync(); // idempotent
    }
}
