using System;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Tracking;

/// <summary>
/// The README's migration table: what each way of moving a hand-rolled WaitGroup to the tracker does with the seed story
/// (a "build" whose "merge" child registers itself too late). Only registering the child through its parent fixes it.
/// </summary>
public sealed class WaitGroupMigrationTests
{
    [Fact]
    public async Task ATypeSwap_AddInsideTheChild_WithWaitAsync_KeepsTheRace_TheWaitReturnsWhileTheChildRuns()
    {
        var tracker = new TaskTracker();
        var childMayRegister = Bounded.NewGate();
        var mergeFinished = false;
        Task? child = null;

        tracker.Add(); // build
        var build = Task.Run(() =>
        {
            child = Task.Run(async () =>
            {
                await childMayRegister.Task; // the scheduler runs the child's Add late
                tracker.Add();
                mergeFinished = true;
                tracker.Done();
            });
            tracker.Done(); // build is done: the count reaches zero before the child registered
        });

        await tracker.WaitAsync().OrHang();

        mergeFinished.Should().BeFalse("the wait returned although the merge had not even started: the seed bug, kept by a type swap");
        await build.OrHang();
        childMayRegister.SetResult();
        await child!.OrHang();
    }

    [Fact]
    public async Task AddInsideTheChild_WithCloseAsync_RefusesTheLateChild_InsteadOfWaitingForIt()
    {
        var tracker = new TaskTracker();
        var childMayRegister = Bounded.NewGate();
        var mergeRan = false;
        Exception? refused = null;
        Task? child = null;

        tracker.Add(); // build
        var build = Task.Run(() =>
        {
            child = Task.Run(async () =>
            {
                await childMayRegister.Task;
                refused = Record.Exception(() => tracker.Add());
                if (refused is null)
                {
                    mergeRan = true;
                    tracker.Done();
                }
            });
            tracker.Done();
        });

        await build.OrHang();
        await tracker.CloseAsync().OrHang();
        childMayRegister.SetResult();
        await child!.OrHang();

        refused.Should().BeOfType<ClosedException>("the tracker completed at zero; a late Add fails loudly");
        mergeRan.Should().BeFalse("the merge was refused, not waited for");
    }

    [Fact]
    public async Task TheChildRegisteredThroughItsParent_IsWaitedFor_ByTheClose()
    {
        var tracker = new TaskTracker();
        var mergeMayFinish = Bounded.NewGate();
        var mergeFinished = false;

        await tracker.Go((build, _) =>
        {
            build.Go(async _ =>
            {
                await mergeMayFinish.Task;
                mergeFinished = true;
            }, "merge");
            return Task.CompletedTask; // build finishes at once; merge is already counted
        }, "build");

        var close = tracker.CloseAsync();
        close.IsCompleted.Should().BeFalse("the merge holds the count");
        mergeMayFinish.SetResult();
        await close.OrHang();

        mergeFinished.Should().BeTrue();
    }
}
