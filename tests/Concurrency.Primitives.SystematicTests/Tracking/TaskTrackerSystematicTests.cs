using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.SystematicTests.Harness;
using Concurrency.Primitives.SystematicTests.HandRolled;
using Microsoft.Coyote.Specifications;
using Xunit.Abstractions;

namespace Concurrency.Primitives.SystematicTests.Tracking;

/// <summary>
/// The WaitGroup seed bug under Coyote: a "build" task spawns a "merge" child while Close waits.
/// The hand-rolled WaitGroup (child calls Add inside itself) must be caught; TaskTracker must hold.
/// </summary>
public sealed class TaskTrackerSystematicTests
{
    private const string MergeNotAwaited = "Close returned while the merge child was still running";
    private const uint Iterations = 1_000;

    private readonly ITestOutputHelper _output;

    public TaskTrackerSystematicTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void HandRolledWaitGroup_ChildAddingInsideItself_IsCaughtNotAwaited()
    {
        var report = CoyoteHarness.Explore(_output, "hand-rolled WaitGroup, Add inside the child", Iterations, HandRolledSeedScenarioAsync);

        report.ShouldFindBug(MergeNotAwaited);
    }

    [Fact]
    public void TaskTracker_ChildRegisteredThroughItsParent_IsAlwaysAwaited()
    {
        var report = CoyoteHarness.Explore(_output, "TaskTracker, child via parent handle", Iterations, TrackerSeedScenarioAsync);

        report.ShouldHoldEverywhere();
    }

    [Fact]
    public void TaskTracker_NoRegistrationOutlivesCompletion_AndTheCountNeverCorrupts()
    {
        var report = CoyoteHarness.Explore(_output, "TaskTracker, racing registrations against close", Iterations, TrackerRacingRegistrationsAsync);

        report.ShouldHoldEverywhere();
    }

    private static async Task HandRolledSeedScenarioAsync()
    {
        var wg = new InterlockedWaitGroup();
        var mergeDone = false;

        wg.Add(); // build is registered before it starts
        var build = Task.Run(() =>
        {
            _ = Task.Run(() =>
            {
                wg.Add(); // the bug: the child registers itself, from inside itself
                mergeDone = true;
                wg.Done();
            });
            wg.Done();
        });

        var close = Task.Run(wg.WaitAsync);
        await close;
        Specification.Assert(mergeDone, $"{MergeNotAwaited} (its Add ran after the count had reached zero).");
        await build;
    }

    [Fact]
    public void TaskTracker_AWaitBegunAfterARenewedCount_IsNeverWokenByTheZeroBeforeIt()
    {
        var report = CoyoteHarness.Explore(_output, "TaskTracker, WaitAsync generations (Go's WaitGroupMisuse2 order)", Iterations, WaitGenerationsScenarioAsync);

        report.ShouldHoldEverywhere();
    }

    /// <summary>
    /// Go's TestWaitGroupMisuse2 order: one Done takes the count to zero while another caller adds and begins a new wait.
    /// However the two interleave, the new wait may complete only at a zero that comes after it: its own caller holds a
    /// count until it calls Done, so the wait must still be pending then. The old wait completes at the first zero.
    /// </summary>
    private static async Task WaitGenerationsScenarioAsync()
    {
        var tracker = new TaskTracker();
        tracker.Add();
        var oldWait = tracker.WaitAsync();
        var releaser = Task.Run(tracker.Done);
        var reuser = Task.Run(async () =>
        {
            tracker.Add();
            var newWait = tracker.WaitAsync();
            await Task.Yield();
            Specification.Assert(!newWait.IsCompleted, "A WaitAsync begun after an Add completed while that Add's count was still held.");
            tracker.Done();
            await newWait;
        });

        await Task.WhenAll(releaser, reuser);
        await oldWait;
        Specification.Assert(tracker.Count == 0, "Every Add was released.");
    }

    private static async Task TrackerSeedScenarioAsync()
    {
        var tracker = new TaskTracker();
        var mergeDone = false;

        await tracker.Go(
            async (build, _) =>
            {
                await Task.Yield();
                build.Go(
                    _ =>
                    {
                        mergeDone = true;
                        return Task.CompletedTask;
                    },
                    "merge");
            },
            "build");

        var close = Task.Run(() => tracker.CloseAsync());
        await close;
        Specification.Assert(mergeDone, $"{MergeNotAwaited}.");
        Specification.Assert(tracker.IsCompleted && tracker.Count == 0, "A completed close must leave the tracker complete with a count of zero.");
        Specification.Assert(!tracker.TryGo(_ => Task.CompletedTask), "A registration was accepted after completion.");
    }

    private static async Task TrackerRacingRegistrationsAsync()
    {
        var tracker = new TaskTracker();
        var closeReturned = 0;

        // A stranger holding anonymous counts (WaitGroup style) a few times: each Add it wins must
        // hold the close open until its Done, and an extra Done must be refused.
        var stranger = Task.Run(async () =>
        {
            for (var round = 0; round < 3; round++)
            {
                try
                {
                    tracker.Add();
                }
                catch (InvalidOperationException)
                {
                    Specification.Assert(tracker.IsCompleted, "Add was refused although the tracker had not completed.");
                    return;
                }

                Specification.Assert(Volatile.Read(ref closeReturned) == 0, "An Add was accepted after CloseAsync returned.");
                await Task.Yield();
                Specification.Assert(Volatile.Read(ref closeReturned) == 0, "CloseAsync returned while an Add registration was still held.");
                tracker.Done();
                var extraDoneRefused = false;
                try
                {
                    tracker.Done();
                }
                catch (InvalidOperationException)
                {
                    extraDoneRefused = true;
                }

                Specification.Assert(extraDoneRefused, "An extra Done() was accepted.");
            }
        });

        // Work whose child is registered through its handle while the close runs.
        try
        {
            await tracker.Go(
                async (parent, _) =>
                {
                    await Task.Yield();
                    using var child = parent.Register("child");
                    await Task.Yield();
                    Specification.Assert(Volatile.Read(ref closeReturned) == 0, "CloseAsync returned while a child lease was held.");
                },
                "parent");
        }
        catch (InvalidOperationException)
        {
            // The close won the race against this top-level Go; that is legal.
        }

        await tracker.CloseAsync();
        Volatile.Write(ref closeReturned, 1);
        Specification.Assert(tracker.Count == 0 && tracker.IsCompleted, "The count must be zero and the tracker complete after close.");
        await stranger;
        Specification.Assert(tracker.Count == 0, "The count must stay zero after completion.");
    }
}
