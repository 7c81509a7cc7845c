using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

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
        timeout.TrackerName.Should().Be("node");
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

        tracker.Snapshot().Single().RegistrationStackTrace.Should().BeNull();
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

        var failure = (await close.Invoking(c => c.OrHang()).Should().ThrowAsync<AggregateException>()).Which;
        failure.InnerExceptions.Select(e => e.Message).Should().Equal("first", "second");
        tracker.IsCompleted.Should().BeTrue();
        tracker.Count.Should().Be(0);
    }

    [Fact]
    public async Task WorkThatThrowsBeforeReturningATask_IsRecordedAsAFailure()
    {
        var tracker = new TaskTracker();
        await tracker.Go(_ => throw new InvalidOperationException("synchronous"));

        var failure = (await tracker.Invoking(t => t.CloseAsync().OrHang()).Should().ThrowAsync<AggregateException>()).Which;
        failure.InnerExceptions.Single().Message.Should().Be("synchronous");
    }

    [Fact]
    public async Task WorkThatReturnsANullTask_IsRecordedAsAFailureThatSaysWhatToDo()
    {
        var tracker = new TaskTracker();
        #pragma warning disable VSTHRD114 // the test returns null on purpose
        await tracker.Go(_ => null!, "careless");
#pragma warning restore VSTHRD114

        var failure = (await tracker.Invoking(t => t.CloseAsync().OrHang()).Should().ThrowAsync<AggregateException>()).Which;
        failure.InnerExceptions.Single().Should().BeOfType<InvalidOperationException>().Which.Message.Should().Contain("'careless' returned a null Task");
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
    public async Task CancelOnFirstFailure_CancelsStopping_LikeErrgroup()
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
        tracker.Stopping.IsCancellationRequested.Should().BeTrue();
        tracker.IsClosing.Should().BeFalse("a failure cancels the token but does not close the tracker");
        await tracker.Invoking(t => t.CloseAsync().OrHang()).Should().ThrowAsync<AggregateException>();
    }

    [Fact]
    public async Task WithoutCancelOnFirstFailure_AFailureLeavesStoppingAlone()
    {
        var tracker = new TaskTracker();
        await tracker.Go(_ => throw new InvalidOperationException("boom"));
        await tracker.WaitAsync().OrHang();

        tracker.Stopping.IsCancellationRequested.Should().BeFalse();
        await tracker.Invoking(t => t.CloseAsync().OrHang()).Should().ThrowAsync<AggregateException>();
    }

    [Fact]
    public async Task AThrowingStoppingCallback_IsSurfacedByClose()
    {
        var tracker = new TaskTracker();
        tracker.Stopping.Register(() => throw new InvalidOperationException("callback"));

        var failure = (await tracker.Invoking(t => t.CloseAsync().OrHang()).Should().ThrowAsync<AggregateException>()).Which;
        failure.InnerExceptions.Single().Message.Should().Be("callback");
    }

    [Fact]
    public async Task DisposeAsync_ThrowsFailuresNobodyHasSeen()
    {
        var tracker = new TaskTracker();
        await tracker.Go(_ => throw new InvalidOperationException("unseen"));

        await tracker.Invoking(t => t.DisposeAsync().OrHang()).Should().ThrowAsync<AggregateException>();
    }

    [Fact]
    public async Task DisposeAsync_AfterCloseThrewTheFailures_DoesNotThrowThemAgain()
    {
        var tracker = new TaskTracker();
        await tracker.Go(_ => throw new InvalidOperationException("seen"));
        await tracker.Invoking(t => t.CloseAsync().OrHang()).Should().ThrowAsync<AggregateException>();

        await tracker.Invoking(t => t.DisposeAsync().OrHang()).Should().NotThrowAsync();
    }

    [Fact]
    public async Task DisposeAsync_TimesOutAfterTheDisposeTimeout()
    {
        var time = new ManualTimeProvider();
        var tracker = new TaskTracker(new TaskTrackerOptions { TimeProvider = time, DisposeTimeout = TimeSpan.FromSeconds(3) });
        using var lease = tracker.Register("stuck");

        var dispose = tracker.DisposeAsync().AsTask();
        time.Advance(TimeSpan.FromSeconds(3));

        var timeout = (await dispose.Invoking(d => d.OrHang()).Should().ThrowAsync<TaskTrackerTimeoutException>()).Which;
        timeout.Outstanding.Single().Name.Should().Be("stuck");
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
