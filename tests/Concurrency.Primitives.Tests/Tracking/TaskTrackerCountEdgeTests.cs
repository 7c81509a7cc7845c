using System;
using System.Linq;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Tracking;

/// <summary>The count and the outcomes at the edges: a refused registration that sweeps, RunAsync behind the limit.</summary>
public sealed class TaskTrackerCountEdgeTests
{
    /// <summary>
    /// Guards the sweep a registration runs under its lock when the registry has grown: the releases it acknowledges
    /// come off the count even when the registration itself is refused (its parent has finished). Were they unlinked
    /// without being counted off, the count would stay high forever and a close would never complete.
    /// </summary>
    [Fact]
    public async Task AChildRefusedBecauseItsParentFinished_StillTakesTheReleasesItsSweepFoundOffTheCount()
    {
        // Finished work is released lazily: its record stays linked, and counted, until a registration sweeps, which a
        // registration does when it finds TaskTracker.MinSweepAt records. (A RunAsync completes after its release.)
        var tracker = new TaskTracker();
        TrackedOperation finished = default;
        await tracker.RunAsync((operation, _) =>
        {
            finished = operation;
            return Task.CompletedTask;
        }).OrHang();
        for (var i = 0; i < TaskTracker.MinSweepAt - 2; i++)
        {
            await tracker.RunAsync(_ => Task.CompletedTask).OrHang();
        }

        using var outstanding = tracker.Register("outstanding");
        tracker.RegistryLength.Should().Be(TaskTracker.MinSweepAt, "no sweep has run yet");

        finished.Invoking(parent => parent.Go(_ => Task.CompletedTask, "child")).Should().Throw<InvalidOperationException>();

        tracker.RegistryLength.Should().Be(1, "the refused registration swept the finished work");
        tracker.Count.Should().Be(1, "only the lease is outstanding");
    }

    /// <summary>
    /// Guards what RunAsync returns when the limit makes its work wait for a slot: the work's own outcome (here its
    /// failure), not the moment the work was started.
    /// </summary>
    [Fact]
    public async Task RunAsync_BehindTheLimit_ReturnsTheWorksOutcome_NotItsStart()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { MaxConcurrency = 1 });
        var holdSlot = Bounded.NewGate();
        await tracker.Go(_ => holdSlot.Task, "holder");

        var run = tracker.RunAsync(_ => Task.FromException(new InvalidOperationException("the work failed")), "behind the limit");
        run.IsCompleted.Should().BeFalse("no slot is free");
        holdSlot.SetResult();

        (await run.Invoking(r => r.OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Message.Should().Be("the work failed");
        await tracker.CloseAsync().OrHang();
    }
}
