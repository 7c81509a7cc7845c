using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Tracking;

/// <summary>Invariants 1-3 of src/Concurrency.Primitives/Tracking/README.md: register before start, terminal completion, children during close.</summary>
public sealed class TaskTrackerRegistrationTests
{
    [Fact]
    public async Task Go_CountsTheWorkBeforeItStarts()
    {
        var tracker = new TaskTracker();
        var release = Bounded.NewGate();
        var countSeenByWork = Bounded.NewGate<int>();

        await tracker.Go(async _ =>
        {
            countSeenByWork.SetResult(tracker.Count);
            await release.Task;
        });

        tracker.Count.Should().Be(1, "Go returns only after the registration is counted");
        (await countSeenByWork.Task.OrHang()).Should().Be(1, "the work runs only after it was registered");
        release.SetResult();
        await tracker.CloseAsync().OrHang();
        tracker.Count.Should().Be(0);
    }

    [Fact]
    public async Task CloseAsync_WaitsForRunningWork()
    {
        var tracker = new TaskTracker();
        var release = Bounded.NewGate();
        await tracker.Go(_ => release.Task);

        var close = tracker.CloseAsync();

        close.IsCompleted.Should().BeFalse();
        tracker.IsClosing.Should().BeTrue();
        release.SetResult();
        await close.OrHang();
        tracker.IsCompleted.Should().BeTrue();
    }

    [Fact]
    public async Task CloseAsync_CancelsStoppingAtOnce()
    {
        var tracker = new TaskTracker();
        var observedCancellation = Bounded.NewGate();
        await tracker.Go(stopping =>
        {
            stopping.Register(() => observedCancellation.SetResult());
            return observedCancellation.Task;
        });

        tracker.ClosingToken.IsCancellationRequested.Should().BeFalse();
        var close = tracker.CloseAsync();

        tracker.ClosingToken.IsCancellationRequested.Should().BeTrue();
        await observedCancellation.Task.OrHang();
        await close.OrHang();
    }

    [Fact]
    public async Task SeedStory_BuildSpawnsMergeWhileCloseWaits_MergeIsAwaitedAndCountPathIs1_2_1_0()
    {
        // The Go blockchain client's bug: a "build" goroutine spawned a "merge" goroutine that called
        // wg.Add(1) inside itself, possibly after build's wg.Done() had taken the count to zero while
        // Close() was in wg.Wait(). Here the merge is registered through build's handle before build returns.
        var log = new RecordingLogger();
        var tracker = new TaskTracker(new TaskTrackerOptions { Logger = log });
        var buildMayFinish = Bounded.NewGate();
        var mergeStarted = Bounded.NewGate();
        var mergeMayFinish = Bounded.NewGate();
        var mergeFinished = false;

        await tracker.Go(
            async (build, _) =>
            {
                await buildMayFinish.Task;
                build.Go(
                    async _ =>
                    {
                        mergeStarted.SetResult();
                        await mergeMayFinish.Task;
                        mergeFinished = true;
                    },
                    "merge");
            },
            "build");
        tracker.Count.Should().Be(1);

        var close = tracker.CloseAsync();
        close.IsCompleted.Should().BeFalse("build is still running");

        buildMayFinish.SetResult();
        await mergeStarted.Task.OrHang();
        await log.WaitFor(e => e.EventId == 1002 && (string?)e["Operation"] == "build").OrHang();
        tracker.Count.Should().Be(1, "build has been released; merge is still counted");
        close.IsCompleted.Should().BeFalse("merge is still running");

        mergeMayFinish.SetResult();
        await close.OrHang();

        mergeFinished.Should().BeTrue("close returned only after the merge child finished");
        var countPath = log.Entries.Where(e => e.EventId is 1001 or 1002).Select(e => (int)e["Count"]!).ToArray();
        countPath.Should().Equal(1, 2, 1, 0);
        tracker.IsCompleted.Should().BeTrue();
    }

    [Fact]
    public async Task TopLevelGo_AfterCloseBegan_IsRejected_AndTheCountIsUnchanged()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { Name = "ingest" });
        var release = Bounded.NewGate();
        await tracker.Go(_ => release.Task);
        var close = tracker.CloseAsync();

        Action act = () => _ = tracker.Go(_ => Task.CompletedTask);

        act.Should().Throw<InvalidOperationException>().WithMessage("*'ingest' is closing*TrackedOperation handle*");
        tracker.TryGo(_ => Task.CompletedTask).Should().BeFalse();
        tracker.Invoking(t => t.Register()).Should().Throw<InvalidOperationException>();
        tracker.Count.Should().Be(1);
        release.SetResult();
        await close.OrHang();
    }

    [Fact]
    public async Task ChildLease_RegisteredThroughALiveParentDuringClose_IsAwaited()
    {
        var tracker = new TaskTracker();
        var parent = tracker.Register("parent");
        var close = tracker.CloseAsync();

        var child = parent.Register("child");
        parent.Dispose();

        close.IsCompleted.Should().BeFalse("the child lease is still outstanding");
        tracker.GetOutstanding().Select(o => o.Name).Should().Equal("child");
        tracker.GetOutstanding().Single().ParentId.Should().Be(parent.Id);
        child.Dispose();
        await close.OrHang();
    }

    [Fact]
    public void ChildRegistration_ThroughAReleasedParent_IsRejected()
    {
        var tracker = new TaskTracker();
        var parent = tracker.Register("parent");
        parent.Dispose();

        parent.Invoking(p => p.Register("late child")).Should().Throw<InvalidOperationException>().WithMessage("*parent operation has already been released*");
        parent.TryGo(_ => Task.CompletedTask).Should().BeFalse();
        tracker.Count.Should().Be(0);
    }

    [Fact]
    public async Task AfterCompletion_EveryRegistrationFails_AndTheTrackerStaysComplete()
    {
        var tracker = new TaskTracker();
        var lease = tracker.Register();
        lease.Dispose();
        await tracker.CloseAsync().OrHang();

        tracker.IsCompleted.Should().BeTrue();
        tracker.Invoking(t => { _ = t.Go(_ => Task.CompletedTask); }).Should().Throw<InvalidOperationException>().WithMessage("*has completed*");
        tracker.Invoking(t => t.Register()).Should().Throw<InvalidOperationException>().WithMessage("*has completed*");
        tracker.Invoking(t => t.Add()).Should().Throw<InvalidOperationException>().WithMessage("*has completed*");
        tracker.TryGo(_ => Task.CompletedTask).Should().BeFalse();
        lease.Invoking(l => l.Register()).Should().Throw<InvalidOperationException>();
        tracker.Count.Should().Be(0);
        await tracker.WaitAsync().OrHang();
    }

    [Fact]
    public async Task Add_DuringCloseWhileCountIsAboveZero_IsAcceptedAndAwaited_AsWithAWaitGroup()
    {
        var tracker = new TaskTracker();
        tracker.Add();
        var close = tracker.CloseAsync();

        tracker.Add(); // the WaitGroup fix: the parent adds for its child while it still holds its own count
        tracker.Done();

        close.IsCompleted.Should().BeFalse();
        tracker.Count.Should().Be(1);
        tracker.Done();
        await close.OrHang();
    }

    [Fact]
    public async Task WorkWithHandle_ReceivesItsOwnActiveHandle()
    {
        var tracker = new TaskTracker();
        var seen = Bounded.NewGate<(bool Active, string Name)>();
        await tracker.Go(
            (self, _) =>
            {
                seen.SetResult((self.IsActive, tracker.GetOutstanding().Single(o => o.Id == self.Id).Name));
                return Task.CompletedTask;
            },
            "worker");

        (await seen.Task.OrHang()).Should().Be((true, "worker"));
        await tracker.CloseAsync().OrHang();
    }

    [Fact]
    public async Task FinishedWork_LeavesTheRegistry_AndItsStaleHandleStaysInactive_WhenItsRecordIsReused()
    {
        var tracker = new TaskTracker();
        var handle = Bounded.NewGate<TrackedOperation>();
        var finish = Bounded.NewGate();
        await tracker.Go(
            async (self, _) =>
            {
                handle.SetResult(self);
                await finish.Task;
            },
            "first");
        var stale = await handle.Task.OrHang();
        tracker.GetOutstanding().Select(o => o.Name).Should().Equal("first");

        finish.SetResult();
        await tracker.WaitAsync().OrHang(); // the work's release is what takes the count to zero

        tracker.GetOutstanding().Should().BeEmpty("finished work is never listed");
        using var next = tracker.Register("next"); // reuses the finished work's pooled record
        stale.IsActive.Should().BeFalse();
        stale.TryGo(_ => Task.CompletedTask).Should().BeFalse("a finished parent cannot start children");
        tracker.GetOutstanding().Should().ContainSingle().Which.Should().Match<TrackedOperationInfo>(o => o.Name == "next" && o.Id == 2);
        tracker.Count.Should().Be(1);
    }

    [Fact]
    public async Task FinishedWork_BehindALongRunningOperation_DoesNotGrowTheRegistry()
    {
        var tracker = new TaskTracker();
        using var head = tracker.Register("long-running"); // the oldest record stays live throughout
        for (var round = 0; round < 50; round++)
        {
            for (var i = 0; i < 100; i++)
            {
                await tracker.Go(_ => Task.CompletedTask);
            }

            // Bounds the wait for the round's releases (nothing signals them individually); never a pause.
            SpinWait.SpinUntil(() => tracker.Count == 1, Bounded.HangLimit).Should().BeTrue();
        }

        // 5,000 finished pieces of work queued up behind the live head: unlinked as they outnumber the live, not kept.
        tracker.RegistryLength.Should().BeInRange(1, 299, "the live head stays linked");
        tracker.GetOutstanding().Select(o => o.Name).Should().Equal("long-running");
    }

    [Fact]
    public void LeasesReleasedOutOfOrder_AreUnlinkedBySweeps_AndNeverListed()
    {
        var tracker = new TaskTracker();
        using var head = tracker.Register("head");
        for (var i = 0; i < 1_000; i++)
        {
            var older = tracker.Register("older");
            var newer = tracker.Register("newer");
            older.Dispose(); // not the newest record: stays linked (skipped) until a sweep
            if (i == 0)
            {
                tracker.GetOutstanding().Select(o => o.Name).Should().Equal("head", "newer"); // (a snapshot sweeps too)
            }

            newer.Dispose(); // the newest record: unlinked at once
        }

        // 1,000 leases released behind the live head: swept as they outnumber the live, not kept.
        tracker.RegistryLength.Should().BeInRange(1, 99, "the live head stays linked");
        tracker.Count.Should().Be(1);
        tracker.GetOutstanding().Select(o => o.Name).Should().Equal("head");
    }

    [Fact]
    public async Task Go_FlowsTheCallersExecutionContext()
    {
        var tracker = new TaskTracker();
        var local = new AsyncLocal<string?> { Value = "caller" };
        var seen = Bounded.NewGate<string?>();

        await tracker.Go(_ =>
        {
            seen.SetResult(local.Value);
            return Task.CompletedTask;
        });

        (await seen.Task.OrHang()).Should().Be("caller");
        await tracker.CloseAsync().OrHang();
    }
}
