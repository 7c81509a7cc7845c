using System;
using System.IO;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Lifecycle;

/// <summary>
/// What a gate's signals (<see cref="LifecycleGate.WhenRunning"/>, <see cref="LifecycleGate.WhenStopped"/>,
/// <see cref="LifecycleGate.Completion"/>, <see cref="LifecycleGate.PendingStopStep"/>) say around a close, a dispose, a
/// failed start and a start cancelled by a stop; and what a close reports.
/// </summary>
public sealed class LifecycleGateCloseAndSignalTests
{
    [Fact]
    public async Task AGateClosedDuringAStartThatThenFailsOnItsOwn_CompletesWhenStopped_BecauseNothingWillRunAnyMore()
    {
        var startMayFail = Bounded.NewGate();
        var gate = new LifecycleGate(start: async (_, _) =>
        {
            await startMayFail.Task; // ignores its token, then fails with its own error
            throw new IOException("disk full");
        });
        var start = gate.StartAsync();
        var stopped = gate.WhenStopped;

        var close = gate.CloseAsync();
        startMayFail.SetResult();

        await close.OrHang();
        await start.Awaiting(s => s.OrHang()).Should().ThrowAsync<IOException>();
        gate.State.Should().Be(LifecycleState.StartFailed);
        await gate.Completion.OrHang();
        await stopped.OrHang(); // as it does when the gate is closed after its start failed
        await gate.WhenStopped.OrHang();
    }

    [Fact]
    public async Task AGateClosedWhenNothingIsLeftToTearDown_CompletesItsCompletionAtOnce()
    {
        var neverStarted = new LifecycleGate();
        var stopped = new LifecycleGate(start: (_, _) => Task.CompletedTask);
        await stopped.StartAsync().OrHang();
        await stopped.StopAsync().OrHang();

        var closeNeverStarted = neverStarted.CloseAsync(TimeSpan.FromSeconds(1));
        var closeStopped = stopped.CloseAsync();

        neverStarted.Completion.IsCompletedSuccessfully.Should().BeTrue("closing a gate that never started is the end of its life");
        stopped.Completion.IsCompletedSuccessfully.Should().BeTrue("closing a stopped gate is the end of its life");
        await Task.WhenAll(closeNeverStarted, closeStopped).OrHang();
    }

    [Fact]
    public async Task Completion_StaysPendingWhileTheGateIsNotClosed_EvenStoppedOrAfterAFailedStart()
    {
        var fail = true;
        var gate = new LifecycleGate(
            start: (_, _) => fail ? throw new IOException("disk full") : Task.CompletedTask,
            options: new LifecycleGateOptions { AllowRestart = true });

        await gate.Awaiting(g => g.StartAsync()).Should().ThrowAsync<IOException>().OrHang();
        gate.Completion.IsCompleted.Should().BeFalse("a failed start can be retried: the gate's life goes on");
        fail = false;
        await gate.StartAsync().OrHang();
        (await gate.StopAsync().OrHang()).Should().BeTrue();
        gate.Completion.IsCompleted.Should().BeFalse("a stopped gate may start again: the gate's life goes on");

        await gate.CloseAsync().OrHang();
        gate.Completion.IsCompletedSuccessfully.Should().BeTrue();
    }

    [Fact]
    public async Task ClosingAGateWhoseRunFaultedOnItsOwn_ThrowsThatFault_AndFaultsItsCompletionWithIt()
    {
        var fault = new IOException("replication broke");
        var faulted = Bounded.NewGate();
        var gate = new LifecycleGate(run: _ => Task.FromException(fault));
        gate.StateChanged += (_, change) =>
        {
            if (change.Current == LifecycleState.RunFaulted)
            {
                faulted.TrySetResult();
            }
        };
        await gate.StartAsync().OrHang();
        await faulted.Task.OrHang();

        (await gate.Awaiting(g => g.CloseAsync()).Should().ThrowAsync<IOException>().OrHang()).Which.Should().BeSameAs(fault);

        gate.State.Should().Be(LifecycleState.Stopped);
        gate.Completion.IsFaulted.Should().BeTrue("the end of the gate's life carries its last run's own fault");
        (await gate.Completion.Awaiting(c => c).Should().ThrowAsync<IOException>()).Which.Should().BeSameAs(fault);
    }

    [Fact]
    public async Task CloseAsync_ThrowsWhatTheStopThrows()
    {
        var gate = new LifecycleGate(stop: _ => throw new IOException("flush failed"));
        await gate.StartAsync().OrHang();

        await gate.Awaiting(g => g.CloseAsync()).Should().ThrowAsync<IOException>().WithMessage("flush failed").OrHang();

        gate.State.Should().Be(LifecycleState.StopFailed);
        gate.Completion.IsCompleted.Should().BeFalse("the teardown is not finished");
    }

    [Fact]
    public async Task ACloseThatRunsOutOfTime_NamesTheStepItWaitedFor_AndAbandonedNoRun()
    {
        var clock = new ManualTimeProvider();
        var bound = TimeSpan.FromSeconds(3);
        var noStepBound = new LifecycleGateOptions { ShutdownTimeout = Timeout.InfiniteTimeSpan, TimeProvider = clock };

        // A gate whose start is still in flight: its teardown waits for no step yet, the close waits for the start.
        var startMayReturn = Bounded.NewGate();
        var starting = new LifecycleGate(start: async (_, _) => await startMayReturn.Task, options: noStepBound);
        _ = starting.StartAsync();
        var closeStarting = starting.CloseAsync(bound);
        await clock.WhenTimersArmed(1).OrHang();

        // A gate whose stop delegate is still running.
        var stopEntered = Bounded.NewGate();
        var stopMayReturn = Bounded.NewGate();
        var stopping = new LifecycleGate(
            stop: async _ =>
            {
                stopEntered.TrySetResult();
                await stopMayReturn.Task;
            },
            options: noStepBound);
        await stopping.StartAsync().OrHang();
        var closeStopping = stopping.CloseAsync(bound);
        await stopEntered.Task.OrHang();
        await clock.WhenTimersArmed(2).OrHang();

        clock.Advance(bound);

        var startTimeout = (await closeStarting.Awaiting(c => c.OrHang()).Should().ThrowAsync<LifecycleStopTimeoutException>()).Which;
        (startTimeout.Step, startTimeout.Timeout, startTimeout.RunAbandoned).Should().Be(("start", bound, false));
        var stopTimeout = (await closeStopping.Awaiting(c => c.OrHang()).Should().ThrowAsync<LifecycleStopTimeoutException>()).Which;
        (stopTimeout.Step, stopTimeout.Timeout, stopTimeout.RunAbandoned).Should().Be(("stop", bound, false));

        startMayReturn.SetResult();
        stopMayReturn.SetResult();
        await starting.Completion.OrHang();
        await stopping.Completion.OrHang();
    }

    [Fact]
    public async Task AGateDisposedTwice_StillRefusesStartsAsDisposed()
    {
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask);

        await gate.DisposeAsync();
        await gate.DisposeAsync();

        await gate.Awaiting(g => g.StartAsync()).Should().ThrowAsync<ObjectDisposedException>();
    }

    [Fact]
    public async Task PendingStopStep_IsNullWhileAFailedStartReleasesWhatItAcquired_BecauseTheGateIsNotStopping()
    {
        var releaseEntered = Bounded.NewGate();
        var releaseMayReturn = Bounded.NewGate();
        var gate = new LifecycleGate(start: (context, _) =>
        {
            context.OnStop(
                async _ =>
                {
                    releaseEntered.TrySetResult();
                    await releaseMayReturn.Task;
                },
                "pool");
            throw new IOException("half-way");
        });

        var start = gate.StartAsync();
        await releaseEntered.Task.OrHang();

        gate.State.Should().Be(LifecycleState.Starting);
        gate.PendingStopStep.Should().BeNull();
        releaseMayReturn.SetResult();
        await start.Awaiting(s => s.OrHang()).Should().ThrowAsync<IOException>();
        gate.PendingStopStep.Should().BeNull();
    }

    [Fact]
    public async Task AStopThatCancelsAStart_CancelsThatStartsWhenRunning_AndWhenRunningThenWaitsForTheNextStart()
    {
        var gate = new LifecycleGate(
            start: async (_, token) => await Task.Delay(Timeout.Infinite, token),
            options: new LifecycleGateOptions { AllowRestart = true });
        var start = gate.StartAsync();
        var running = gate.WhenRunning;

        (await gate.StopAsync().OrHang()).Should().BeTrue();

        await start.Awaiting(s => s.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        running.IsCanceled.Should().BeTrue("the start it waited for was cancelled");
        gate.State.Should().Be(LifecycleState.Stopped);
        var next = gate.WhenRunning;
        next.IsCompleted.Should().BeFalse("a restart is allowed: WhenRunning waits for the next start");
    }
}
