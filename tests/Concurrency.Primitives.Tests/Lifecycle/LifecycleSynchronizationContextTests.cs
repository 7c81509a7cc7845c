using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Lifecycle;

/// <summary>
/// The gate's and the group's calls that must really wait (for a stop in flight) complete under a caller's context that
/// never runs what is posted to it (a UI thread blocked on the call), and the gate's own continuations are never posted
/// to a context that user code left on a thread it ran on. (Api/SynchronizationContextTests holds the other primitives'.)
/// </summary>
public sealed class LifecycleSynchronizationContextTests
{
    [Fact]
    public async Task AStartThatWaitsForAStopInFlight_CompletesUnderABlockedContext()
    {
        var stopEntered = Bounded.NewGate();
        var stopMayReturn = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: (_, _) => Task.CompletedTask,
            stop: async _ =>
            {
                stopEntered.TrySetResult();
                await stopMayReturn.Task;
            },
            options: new LifecycleGateOptions { AllowRestart = true });
        await gate.StartAsync().OrHang();
        var stop = gate.StopAsync();
        await stopEntered.Task.OrHang();

        var posted = BlockedContext.BlockOn(() =>
        {
            var start = gate.StartAsync();
            start.IsCompleted.Should().BeFalse("it waits for the stop, released below");
            _ = Task.Run(stopMayReturn.SetResult);
            return new Task[] { start };
        });

        posted.Should().Be(0);
        (await stop.OrHang()).Should().BeTrue();
        gate.State.Should().Be(LifecycleState.Running);
    }

    [Fact]
    public async Task AGroupsBoundedCloseThatMustWait_CompletesUnderABlockedContext()
    {
        var stopEntered = Bounded.NewGate();
        var stopMayReturn = Bounded.NewGate();
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node" });
        group.Add(new LifecycleGate(
            stop: async _ =>
            {
                stopEntered.TrySetResult();
                await stopMayReturn.Task;
            },
            options: new LifecycleGateOptions { Name = "db" }));
        await group.StartAsync().OrHang();

        var posted = BlockedContext.BlockOn(() =>
        {
            var close = group.CloseAsync(TimeSpan.FromMinutes(5));
            close.IsCompleted.Should().BeFalse("it waits for the gate's stop, released below");
            _ = Task.Run(async () =>
            {
                await stopEntered.Task;
                stopMayReturn.SetResult();
            });
            return new[] { close };
        });

        posted.Should().Be(0);
        group.State.Should().Be(LifecycleState.Stopped);
    }

    /// <summary>
    /// A stop during a start cancels the start's token on the stop's own thread: the start's cancellation callbacks run
    /// there, and one may leave a context behind (registered without the execution context, nothing restores it). The
    /// stop's wait for the start must not come back through that context.
    /// </summary>
    [Fact]
    public async Task AStopWaitingForAStart_IsNotPostedToAContextTheStartsCancellationCallbackLeftOnItsThread()
    {
        var context = new CountingContext();
        var clock = new ManualTimeProvider();
        var startEntered = Bounded.NewGate();
        var startMayReturn = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: async (_, token) =>
            {
                token.UnsafeRegister(static state => SynchronizationContext.SetSynchronizationContext((SynchronizationContext)state!), context);
                startEntered.TrySetResult();
                await startMayReturn.Task; // ignores its token
            },
            options: new LifecycleGateOptions { TimeProvider = clock });
        var start = gate.StartAsync();
        await startEntered.Task.OrHang();

        var stop = gate.StopAsync();
        await clock.WhenTimersArmed().OrHang(); // the stop cancelled the start's token and waits for the start, bounded
        startMayReturn.SetResult();

        (await stop.OrHang()).Should().BeTrue();
        (await start.OrHang()).Should().BeTrue("the start ignored its token and succeeded");
        context.Posts.Should().Be(0, "the stop went on without the context left on its thread");
    }
}
