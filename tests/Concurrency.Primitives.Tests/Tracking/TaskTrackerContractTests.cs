using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Tracking;

/// <summary>
/// The tracker's smaller promises, each on its own: what its reports and messages say, the identity of its handles,
/// the overloads the main tests do not reach, and what a disposal logs.
/// </summary>
public sealed class TaskTrackerContractTests
{
    [Fact]
    public async Task RunAsync_WithAHandle_GivesTheWorkItsOwnOperation_AndReturnsItsOutcome()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { Name = "node" });
        long seen = 0;

        await tracker.RunAsync((operation, _) => { seen = operation.Id; return Task.CompletedTask; }, "import").OrHang();
        await tracker.Awaiting(t => t.RunAsync((_, _) => throw new InvalidOperationException("import failed"))).Should().ThrowAsync<InvalidOperationException>();

        seen.Should().BePositive();
        ArgumentNullException? refused = null;
        try
        {
            _ = tracker.RunAsync((Func<TrackedOperation, CancellationToken, Task>)null!); // refused at the call, not in the task
        }
        catch (ArgumentNullException exception)
        {
            refused = exception;
        }

        refused!.ParamName.Should().Be("work");
        await tracker.CloseAsync().OrHang(); // the failure went to RunAsync's caller, not to the close
    }

    [Fact]
    public void HandlesOfTwoTrackers_AreNeverEqual_EvenOnOneRecordWithOneId()
    {
        // Records go back to a reservoir every tracker shares, and each tracker counts its ids from 1: one record can carry
        // the same id in two trackers, one after the other. Which tracker takes which record depends on every other tracker
        // in the process, so the two handles are made directly on one record.
        var node = new TrackedNode();
        var first = new TaskTracker();
        var second = new TaskTracker();

        (new TrackedLease(first, node, 1) == new TrackedLease(second, node, 1)).Should().BeFalse("a stale handle of one tracker never stands for another's registration");
        (new TrackedLease(first, node, 1) == new TrackedLease(first, node, 1)).Should().BeTrue();
    }

    [Fact]
    public void Leases_AreEqualOnlyToThemselves_AndTheDefaultOnlyToTheDefault()
    {
        var tracker = new TaskTracker();
        var first = tracker.Register("a");
        var copy = first;
        var second = tracker.Register("b");

        (first == copy).Should().BeTrue();
        (first != copy).Should().BeFalse();
        (first == second).Should().BeFalse();
        (first != second).Should().BeTrue();
        first.Equals((object)copy).Should().BeTrue();
        first.GetHashCode().Should().Be(copy.GetHashCode());
        (default(TrackedLease) == default(TrackedLease)).Should().BeTrue();
        (default(TrackedLease) != first).Should().BeTrue();

        first.Dispose();
        var reused = tracker.Register("c"); // may sit on the node the first one gave back
        (reused == first).Should().BeFalse("a new registration is a new operation, even on a reused node");
        reused.Dispose(); // the newest registration: its node is pooled at once, and the next registration takes it
        var again = tracker.Register("d");
        (again == reused).Should().BeFalse("a stale handle never equals the registration that reuses its node");
        again.Dispose();
        second.Dispose();
    }

    [Fact]
    public async Task AHandlesClosingToken_IsItsTrackers_AndADefaultHandlesIsNone()
    {
        var tracker = new TaskTracker();
        var lease = tracker.Register("request");
        var handle = Bounded.NewGate<TrackedOperation>();
        var release = Bounded.NewGate();
        _ = tracker.Go((operation, _) => { handle.SetResult(operation); return release.Task; }, "work");
        var operation = await handle.Task.OrHang();

        lease.ClosingToken.Should().Be(tracker.ClosingToken);
        operation.ClosingToken.Should().Be(tracker.ClosingToken);
        lease.ClosingToken.CanBeCanceled.Should().BeTrue();
        default(TrackedLease).ClosingToken.Should().Be(CancellationToken.None);
        default(TrackedOperation).ClosingToken.Should().Be(CancellationToken.None);

        var closing = tracker.CloseAsync();
        operation.ClosingToken.IsCancellationRequested.Should().BeTrue("the close asks running work to finish through the handle's token");
        lease.Dispose();
        release.SetResult();
        await closing.OrHang();
    }

    [Fact]
    public async Task AChildStartedWithGo_ThatFails_FaultsTheTrackersCompletion()
    {
        var tracker = new TaskTracker();
        var failure = new InvalidOperationException("the child failed");
        var childDone = Bounded.NewGate();

        _ = tracker.Go((operation, _) =>
        {
            operation.Go(_ =>
            {
                childDone.SetResult();
                return Task.FromException(failure);
            }, "child");
            return childDone.Task;
        }, "parent");

        (await tracker.Awaiting(t => t.CloseAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>())
            .Which.Should().BeSameAs(failure, "nobody else observes a child started with Go: the tracker keeps its failure");
        tracker.Completion.Exception!.InnerExceptions.Should().Equal(failure);
    }

    [Fact]
    public async Task WorkThatThrowsCancellationBeforeReturningItsTask_IsCancelled_NotAFailure()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { Name = "jobs" });

        var run = tracker.RunAsync(_ => throw new OperationCanceledException("not now"), "early");
        _ = tracker.Go(_ => throw new OperationCanceledException("not now"), "early too");

        await run.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).OrHang();
        run.IsCanceled.Should().BeTrue("as from an async delegate, a cancellation thrown before the task came back is a cancelled task");
        await tracker.CloseAsync().OrHang();
        tracker.Completion.IsCompletedSuccessfully.Should().BeTrue("a cancelled operation is not a failure of the tracker");
        tracker.Count.Should().Be(0);
    }

    /// <summary>What a debugger shows for a tracker (its <see cref="System.Diagnostics.DebuggerDisplayAttribute"/>, evaluated as a debugger does).</summary>
    [Fact]
    public async Task TheDebuggerView_SaysTheNameTheCountAndWhetherItIsClosingOrCompleted()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { Name = "jobs" });
        var first = tracker.Register("a");
        var second = tracker.Register("b");

        DebuggerView(tracker).Should().Be("jobs: Count <= 2");
        second.Dispose();
        var closing = tracker.CloseAsync();
        DebuggerView(tracker).Should().Be("jobs: Count <= 1, closing");
        first.Dispose();
        await closing.OrHang();
        DebuggerView(tracker).Should().Be("jobs: Count <= 0, completed");
    }

    private static string DebuggerView(TaskTracker tracker)
    {
        var display = typeof(TaskTracker).GetCustomAttributes(typeof(System.Diagnostics.DebuggerDisplayAttribute), inherit: false)
            .Cast<System.Diagnostics.DebuggerDisplayAttribute>().Single();
        display.Value.Should().Be("{DebuggerDisplay,nq}");
        var property = typeof(TaskTracker).GetProperty("DebuggerDisplay", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!;
        return (string)property.GetValue(tracker)!;
    }

    [Fact]
    public async Task OperationHandles_AreEqualOnlyToThemselves()
    {
        var tracker = new TaskTracker();
        var handles = new TrackedOperation[2];
        var both = new CountdownEvent(2);
        var release = Bounded.NewGate();
        _ = tracker.Go((operation, _) => { handles[0] = operation; both.Signal(); return release.Task; }, "a");
        _ = tracker.Go((operation, _) => { handles[1] = operation; both.Signal(); return release.Task; }, "b");
        await Task.Run(() => both.Wait(Bounded.HangLimit)).OrHang();

        (handles[0] == handles[0]).Should().BeTrue();
        (handles[0] != handles[0]).Should().BeFalse();
        (handles[0] == handles[1]).Should().BeFalse();
        (handles[0] != handles[1]).Should().BeTrue();
        handles[0].Equals((object)handles[0]).Should().BeTrue();
        handles[0].Equals((object)"a").Should().BeFalse();
        release.SetResult();
        await tracker.CloseAsync().OrHang();
    }

    [Fact]
    public void AnOperationsDescription_SaysWhatItIsAndWhoseChildItIs()
    {
        new TrackedOperationInfo(3, null, "build", TrackedOperationKind.Work, waitingForSlot: false, TimeSpan.FromSeconds(2.5), null)
            .ToString().Should().Be("build #3 (work, age 2.5 s)");
        new TrackedOperationInfo(4, 3, "merge", TrackedOperationKind.Work, waitingForSlot: true, TimeSpan.Zero, null)
            .ToString().Should().Be("merge #4 (work waiting for a slot, child of #3, age 0 s)");
        new TrackedOperationInfo(5, null, "request", TrackedOperationKind.Lease, waitingForSlot: false, TimeSpan.FromMilliseconds(1), null)
            .ToString().Should().Be("request #5 (lease, age 0.001 s)");
        FluentActions.Invoking(() => new TrackedOperationInfo(1, null, null!, TrackedOperationKind.Work, false, TimeSpan.Zero, null))
            .Should().Throw<ArgumentNullException>();
    }

    [Fact]
    public void ASnapshot_CountsTheAnonymousOnlyWhenThereAreAny()
    {
        var one = new[] { new TrackedOperationInfo(1, null, "build", TrackedOperationKind.Work, false, TimeSpan.FromSeconds(1), null) };

        new TaskTrackerSnapshot("node", one, unnamedCount: 0).ToString().Should().Be($"Tracker 'node': 1 operation(s) outstanding{Environment.NewLine}  build #1 (work, age 1 s)");
        new TaskTrackerSnapshot("node", one, unnamedCount: 2).ToString().Should().StartWith("Tracker 'node': 3 operation(s) outstanding (2 anonymous)");
    }

    [Fact]
    public void ACloseTimeout_ListsTheFirstTwentyOperations_AndCountsTheRest()
    {
        var many = Enumerable.Range(1, 25)
            .Select(i => new TrackedOperationInfo(i, null, $"job{i}", TrackedOperationKind.Work, false, TimeSpan.FromSeconds(1), null))
            .ToList();

        var timeout = new TaskTrackerTimeoutException("node", TimeSpan.FromSeconds(5), many, unnamedCount: 0);
        var lines = timeout.Message.Split(Environment.NewLine);

        lines[0].Should().EndWith("with 25 operation(s) outstanding (the tracker stays closing; the work keeps running) (each child under the operation that registered it):");
        lines.Skip(1).Take(20).Should().OnlyContain(line => line.StartsWith("  job", StringComparison.Ordinal));
        lines[20].Should().StartWith("  job20 #20");
        lines[21].Should().Be("  ... and 5 more");
        lines.Should().HaveCount(22);

        var exactly = new TaskTrackerTimeoutException("node", TimeSpan.FromSeconds(5), many.Take(20).ToList(), unnamedCount: 0);
        exactly.Message.Should().NotContain("more", "all twenty were listed");
    }

    [Fact]
    public async Task TheRejections_AfterDisposal_SayTheTrackerWasDisposed()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { Name = "node" });
        var lease = tracker.Register("running");
        var disposal = tracker.DisposeAsync().AsTask();

        FluentActions.Invoking(() => tracker.Register()).Should().Throw<ObjectDisposedException>()
            .WithMessage("*Task tracker 'node' is being disposed: new top-level work is rejected*");
        lease.Dispose();

        FluentActions.Invoking(() => tracker.Register()).Should().Throw<ObjectDisposedException>()
            .WithMessage("*Task tracker 'node' has been disposed and has completed; it accepts no more registrations. Create a new TaskTracker.*");
        await disposal.OrHang();
    }

    [Fact]
    public async Task ADisposalThatTimesOut_LogsHowManyNamedAndAnonymousOperationsItLeft()
    {
        var time = new ManualTimeProvider();
        var logger = new RecordingLogger();
        var tracker = new TaskTracker(new TaskTrackerOptions { Logger = logger, TimeProvider = time, ShutdownTimeout = TimeSpan.FromSeconds(3) });
        var lease = tracker.Register("request");
        tracker.Add(2);

        var disposal = tracker.DisposeAsync().AsTask();
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(3));
        await disposal.OrHang();

        logger.Entries.Should().ContainSingle(e => e.EventId == 1008).Which["Count"].Should().Be(3);
        lease.Dispose();
        tracker.Done();
        tracker.Done();
    }

    [Fact]
    public async Task ADisposalWithFailures_LogsHowManyWereRecorded()
    {
        var logger = new RecordingLogger();
        var tracker = new TaskTracker(new TaskTrackerOptions { Logger = logger });
        var release = Bounded.NewGate();
        _ = tracker.Go(async _ => { await release.Task; throw new InvalidOperationException("one"); });
        _ = tracker.Go(async _ => { await release.Task; throw new InvalidOperationException("two"); });

        var disposal = tracker.DisposeAsync().AsTask();
        release.SetResult();
        await disposal.OrHang();

        logger.Entries.Should().ContainSingle(e => e.EventId == 1009).Which["Failures"].Should().Be(2);
    }

    [Fact]
    public async Task AThrowingClosingTokenCallback_IsLoggedAsTheCallbacksFailure()
    {
        var logger = new RecordingLogger();
        var tracker = new TaskTracker(new TaskTrackerOptions { Logger = logger });
        tracker.ClosingToken.Register(() => throw new InvalidOperationException("callback"));

        await tracker.Awaiting(t => t.CloseAsync()).Should().ThrowAsync<InvalidOperationException>().OrHang();

        logger.Entries.Should().ContainSingle(e => e.EventId == 1003).Which["Operation"].Should().Be("ClosingToken callback");
    }

    [Fact]
    public async Task ALongRunningChildWhoseParentFinished_NamesItsParentAsFinished_AndSaysTheSiteWasNotCaptured()
    {
        var time = new ManualTimeProvider();
        var logger = new RecordingLogger();
        var tracker = new TaskTracker(new TaskTrackerOptions { Logger = logger, TimeProvider = time, LongRunningThreshold = TimeSpan.FromMinutes(1) });
        var release = Bounded.NewGate();
        TrackedLease child = default;
        await tracker.RunAsync((operation, _) => { child = operation.Register("merge"); return Task.CompletedTask; }, "build").OrHang();

        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromMinutes(1));

        var entry = logger.Entries.Should().ContainSingle(e => e.EventId == 1012).Which;
        entry["Operation"].Should().Be("merge");
        ((string)entry["Parent"]!).Should().MatchRegex("^'\\(finished\\)' #[0-9]+$");
        entry["RegistrationSite"].Should().Be("not captured (TaskTrackerOptions.CaptureRegistrationStackTraces)");
        child.Dispose();
        await tracker.CloseAsync().OrHang();
    }
}
