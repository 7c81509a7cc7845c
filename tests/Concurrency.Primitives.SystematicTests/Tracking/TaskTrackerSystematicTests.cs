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

    /// <summary>A reader that holds the registry lock and sweeps released records: each one acknowledges releases too.</summary>
    public enum Sweeper
    {
        Count,
        Snapshot,
    }

    /// <summary>
    /// Once a close waits, a finishing work's releaser takes itself off the count, unless a sweep (by <paramref name="sweeper"/>)
    /// wins its record between the releaser's two steps (marking the record, then claiming its acknowledgement): then the
    /// sweeper holds the last release and must complete the close. Two works finish, so that one can finish whole while a
    /// sweep holds the lock: a snapshot must never list a record released that way.
    /// </summary>
    [Theory]
    [InlineData(Sweeper.Count)]
    [InlineData(Sweeper.Snapshot)]
    public void TaskTracker_ASweepThatTakesTheLastRelease_CompletesTheCloseWaitingForIt(Sweeper sweeper)
    {
        var report = CoyoteHarness.Explore(_output, $"TaskTracker, a sweep by {sweeper} racing the releases a close waits for", Iterations, () => SweepRacingReleasesAsync(sweeper));

        report.ShouldHoldEverywhere();
    }

    private static async Task SweepRacingReleasesAsync(Sweeper sweeper)
    {
        var tracker = new TaskTracker();
        var first = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var second = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        await tracker.Go(_ => first.Task, "first");
        await tracker.Go(_ => second.Task, "second");
        var close = tracker.CloseAsync(); // from here on, releases take themselves off the count

        var releases = Task.Run(() =>
        {
            first.SetResult(true);
            second.SetResult(true);
        });
        var sweep = Task.Run(() =>
        {
            for (var round = 0; round < 2; round++)
            {
                if (sweeper == Sweeper.Count)
                {
                    Specification.Assert(tracker.Count is >= 0 and <= 2, "The count left the range of what was registered.");
                    continue;
                }

                foreach (var operation in tracker.GetOutstanding())
                {
                    Specification.Assert(
                        operation.Id > 0 && operation.Name is "first" or "second",
                        $"A snapshot listed a released record: #{operation.Id} '{operation.Name}'.");
                }
            }
        });

        await Task.WhenAll(releases, sweep);
        await close; // a sweep that took the last release and did not settle the count leaves this waiting: a deadlock
        Specification.Assert(tracker.IsCompleted && tracker.Count == 0, "The close returned before the tracker completed.");
    }

    /// <summary>
    /// A registration refused while the tracker closes still sweeps when the registry has doubled, and may win the last
    /// work's release from its releaser (between marking the record and claiming its acknowledgement): then the refused
    /// registration holds the release that takes the count to zero, and must complete the close.
    /// </summary>
    [Fact]
    public void TaskTracker_ARefusedRegistrationThatTakesTheLastRelease_CompletesTheCloseWaitingForIt()
    {
        var report = CoyoteHarness.Explore(_output, "TaskTracker, a refused registration's sweep racing the last release", Iterations, RefusedRegistrationRacingTheLastReleaseAsync);

        report.ShouldHoldEverywhere();
    }

    private static async Task RefusedRegistrationRacingTheLastReleaseAsync()
    {
        var tracker = new TaskTracker();
        var finish = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var parent = tracker.Register("parent");
        var close = tracker.CloseAsync(); // from here on, releases take themselves off the count

        // While closing, only children of a live registration are accepted. Three children fill the registry up to its
        // sweep threshold; the leases are then released, staying linked behind the newest record (the work).
        var first = parent.Register("filler 1");
        var second = parent.Register("filler 2");
        parent.Go(_ => finish.Task, "last");
        first.Dispose();
        second.Dispose();
        parent.Dispose();
        // (Not Count here: it sweeps, and the refused registration would find nothing left to sweep.)
        Specification.Assert(tracker.RegistryLength == 4, "The registry must hold four records for the refused registration to sweep.");

        var release = Task.Run(() => finish.SetResult(true));
        var refused = Task.Run(() => Specification.Assert(!tracker.TryGo(_ => Task.CompletedTask), "A top-level registration was accepted while closing."));
        await Task.WhenAll(release, refused);
        await close; // a refused registration that took the last release and did not settle the count leaves this waiting
        Specification.Assert(tracker.IsCompleted && tracker.Count == 0, "The close returned before the tracker completed.");
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
