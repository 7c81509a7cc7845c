using System;
using System.Collections.Concurrent;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Lifecycle;

/// <summary>Invariants 3-6 and 9 of src/Concurrency.Primitives/Lifecycle/README.md: stopping, teardown order, failures, timeouts.</summary>
public sealed class LifecycleGateStopTests
{
    [Fact]
    public async Task StopBeforeStart_IsANoOpThatReportsNotStarted()
    {
        var stops = 0;
        var gate = new LifecycleGate(
            start: (_, _) => Task.CompletedTask,
            stop: _ =>
            {
                stops++;
                return Task.CompletedTask;
            });

        (await gate.StopAsync().OrHang()).Should().BeFalse();

        gate.State.Should().Be(LifecycleState.NotStarted);
        stops.Should().Be(0);
    }

    [Fact]
    public async Task Stop_TearsDownInOrder_CancelRun_AwaitRun_StopDelegate_ThenResourcesInReverse()
    {
        var journal = new ConcurrentQueue<string>();
        var gate = new LifecycleGate(
            start: (context, _) =>
            {
                context.Own(new TrackedResource("database", journal));
                context.Own(new TrackedResource("replication", journal));
                context.OnStop(_ =>
                {
                    journal.Enqueue("checkpoint");
                    return Task.CompletedTask;
                }, "checkpoint");
                return Task.CompletedTask;
            },
            run: async token =>
            {
                try
                {
                    await Task.Delay(Timeout.Infinite, token);
                }
                finally
                {
                    journal.Enqueue("run returned");
                }
            },
            stop: _ =>
            {
                journal.Enqueue("stop delegate");
                return Task.CompletedTask;
            });
        await gate.StartAsync().OrHang();

        (await gate.StopAsync().OrHang()).Should().BeTrue();

        journal.Should().Equal("run returned", "stop delegate", "checkpoint", "dispose replication", "dispose database");
        gate.State.Should().Be(LifecycleState.Stopped);
        await gate.WhenStopped.OrHang();
    }

    [Fact]
    public async Task ConcurrentStops_ShareOneStop()
    {
        var stops = 0;
        var release = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: (_, _) => Task.CompletedTask,
            stop: async _ =>
            {
                Interlocked.Increment(ref stops);
                await release.Task;
            });
        await gate.StartAsync().OrHang();

        var first = gate.StopAsync();
        var second = gate.StopAsync();
        var third = gate.StopAsync();
        release.SetResult();

        var results = await Task.WhenAll(first, second, third).OrHang();
        results.Should().Equal(true, false, false);
        stops.Should().Be(1);
    }

    [Fact]
    public async Task StopDuringStart_CancelsTheStartsToken_WaitsForIt_AndNeverCallsStop()
    {
        var startSawCancellation = Bounded.NewGate();
        var stops = 0;
        var gate = new LifecycleGate(
            start: async (_, token) =>
            {
                var cancelled = Bounded.NewGate();
                using var registration = token.Register(() => cancelled.SetResult());
                await cancelled.Task;
                startSawCancellation.SetResult();
                token.ThrowIfCancellationRequested();
            },
            stop: _ =>
            {
                stops++;
                return Task.CompletedTask;
            });
        var start = gate.StartAsync();

        var stop = gate.StopAsync();

        await startSawCancellation.Task.OrHang();
        (await stop.OrHang()).Should().BeTrue("this stop ended the start");
        await start.Invoking(s => s.OrHang()).Should().ThrowAsync<OperationCanceledException>().WithMessage("*cancelled by a stop*");
        gate.State.Should().Be(LifecycleState.Stopped);
        stops.Should().Be(0);
    }

    [Fact]
    public async Task StopDuringAStartThatSucceedsAnyway_StillInvokesTheRun_WithItsTokenAlreadyCancelled()
    {
        var release = Bounded.NewGate();
        var runToken = Bounded.NewGate<CancellationToken>();
        var gate = new LifecycleGate(
            start: async (_, _) => await release.Task, // ignores its token
            run: token =>
            {
                runToken.SetResult(token);
                return Task.CompletedTask;
            });
        var start = gate.StartAsync();
        var stop = gate.StopAsync();

        release.SetResult();

        (await runToken.Task.OrHang()).IsCancellationRequested.Should().BeTrue();
        (await start.OrHang()).Should().BeTrue();
        (await stop.OrHang()).Should().BeTrue();
        gate.State.Should().Be(LifecycleState.Stopped);
    }

    [Fact]
    public async Task StopFailingOnce_LeavesStopFailed_AndARetryResumesAndSucceeds()
    {
        var attempts = 0;
        var resource = new TrackedResource("client");
        var gate = new LifecycleGate(
            start: (context, _) => Task.FromResult(context.Own(resource)),
            stop: _ => Interlocked.Increment(ref attempts) == 1 ? Task.FromException(new InvalidOperationException("flush failed")) : Task.CompletedTask);
        await gate.StartAsync().OrHang();

        await gate.Invoking(g => g.StopAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("flush failed");
        gate.State.Should().Be(LifecycleState.StopFailed);
        resource.IsDisposed.Should().BeFalse("the teardown stopped at the failing step");
        await gate.Invoking(g => g.StartAsync()).Should().ThrowAsync<InvalidOperationException>().WithMessage("*Call StopAsync*");

        (await gate.StopAsync().OrHang()).Should().BeTrue();
        attempts.Should().Be(2);
        resource.IsDisposed.Should().BeTrue();
        gate.State.Should().Be(LifecycleState.Stopped);
    }

    [Fact]
    public async Task RunFaultingOnItsOwn_FaultsTheGate_AndTheStopTearsDownThenRethrowsIt()
    {
        var failRun = Bounded.NewGate();
        var faulted = Bounded.NewGate<LifecycleStateChangedEventArgs>();
        var resource = new TrackedResource("client");
        var gate = new LifecycleGate(
            start: (context, _) => Task.FromResult(context.Own(resource)),
            run: async _ =>
            {
                await failRun.Task;
                throw new InvalidOperationException("replication broke");
            });
        gate.StateChanged += (_, e) =>
        {
            if (e.Current == LifecycleState.RunFaulted)
            {
                faulted.TrySetResult(e);
            }
        };
        await gate.StartAsync().OrHang();

        failRun.SetResult();

        (await faulted.Task.OrHang()).Exception!.Message.Should().Be("replication broke");
        gate.State.Should().Be(LifecycleState.RunFaulted);
        await gate.Invoking(g => g.StopAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("replication broke");
        resource.IsDisposed.Should().BeTrue();
        gate.State.Should().Be(LifecycleState.Stopped);
        (await gate.StopAsync().OrHang()).Should().BeFalse("already stopped; the fault was reported once");
    }

    [Fact]
    public async Task ARunThatFailsOnItsOwnWithAnOperationCanceledException_IsAFault_NotAnOrderlyExit()
    {
        // An HttpClient timeout inside the loop surfaces as TaskCanceledException although the run's token was never
        // cancelled: only a cancellation the stop asked for is an orderly exit.
        var failRun = Bounded.NewGate();
        var faulted = Bounded.NewGate<LifecycleStateChangedEventArgs>();
        var gate = new LifecycleGate(
            start: (_, _) => Task.CompletedTask,
            run: async _ =>
            {
                await failRun.Task;
                throw new TaskCanceledException("the request timed out");
            });
        gate.StateChanged += (_, e) =>
        {
            if (e.Current == LifecycleState.RunFaulted)
            {
                faulted.TrySetResult(e);
            }
        };
        await gate.StartAsync().OrHang();

        failRun.SetResult();

        (await faulted.Task.OrHang()).Exception.Should().BeOfType<TaskCanceledException>();
        await gate.Invoking(g => g.StopAsync().OrHang()).Should().ThrowAsync<TaskCanceledException>().WithMessage("the request timed out");
        gate.State.Should().Be(LifecycleState.Stopped, "the teardown completed; the run's fault was reported by the stop");
    }

    [Fact]
    public async Task ARunWhoseTaskIsCancelledWithoutAnExceptionOfItsOwn_FaultsTheGate_AndTheStopThrowsThatSameFault()
    {
        // A run that returns a task cancelled by a token of its own (Task.Delay on another source, Task.FromCanceled)
        // carries no exception: every await of it throws a new TaskCanceledException. The fault the gate reports
        // (RunFaulted, Fault) and the one its stop and Completion throw must be the same object, as for any other fault.
        using var failRun = new CancellationTokenSource();
        var faulted = Bounded.NewGate<LifecycleStateChangedEventArgs>();
        var gate = new LifecycleGate(
            start: (_, _) => Task.CompletedTask,
            run: _ => Task.Delay(Timeout.Infinite, failRun.Token));
        gate.StateChanged += (_, e) =>
        {
            if (e.Current == LifecycleState.RunFaulted)
            {
                faulted.TrySetResult(e);
            }
        };
        await gate.StartAsync().OrHang();

        await failRun.CancelAsync();

        var reported = (await faulted.Task.OrHang()).Exception;
        reported.Should().BeOfType<TaskCanceledException>();
        gate.Fault.Should().BeSameAs(reported);
        var thrown = await gate.Invoking(g => g.CloseAsync().OrHang()).Should().ThrowAsync<TaskCanceledException>();
        thrown.Which.Should().BeSameAs(reported, "the stop throws the fault the gate reported, not a new exception from a second await of the run");
        var completion = await gate.Invoking(g => g.Completion.OrHang()).Should().ThrowAsync<TaskCanceledException>();
        completion.Which.Should().BeSameAs(reported);
        gate.State.Should().Be(LifecycleState.Stopped);
    }

    [Fact]
    public async Task ARunEndingWithAnOperationCanceledExceptionAfterTheStopCancelledIt_IsAnOrderlyExit()
    {
        var gate = new LifecycleGate(
            start: (_, _) => Task.CompletedTask,
            run: async token =>
            {
                // A token linked to the run's: the exception carries the linked token, not the run's own.
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(token);
                await Task.Delay(Timeout.Infinite, linked.Token);
            });
        await gate.StartAsync().OrHang();

        (await gate.StopAsync().OrHang()).Should().BeTrue();
        gate.State.Should().Be(LifecycleState.Stopped);
    }

    [Fact]
    public async Task StopTimeout_NamesTheRun_AndReleasesNothingUnderIt_ThenAResumedStopSucceeds()
    {
        var time = new ManualTimeProvider();
        var runMayReturn = Bounded.NewGate();
        var resource = new TrackedResource("client");
        var gate = new LifecycleGate(
            start: (context, _) => Task.FromResult(context.Own(resource)),
            run: _ => runMayReturn.Task, // ignores its token
            options: new LifecycleGateOptions { TimeProvider = time, ShutdownTimeout = TimeSpan.FromSeconds(5) });
        await gate.StartAsync().OrHang();

        var stop = gate.StopAsync();
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(5));

        var timeout = (await stop.Invoking(s => s.OrHang()).Should().ThrowAsync<LifecycleStopTimeoutException>()).Which;
        timeout.Step.Should().Be("run");
        timeout.RunAbandoned.Should().BeFalse();
        resource.IsDisposed.Should().BeFalse("nothing is disposed under a live run");
        gate.State.Should().Be(LifecycleState.StopFailed);

        runMayReturn.SetResult();
        (await gate.StopAsync().OrHang()).Should().BeTrue();
        resource.IsDisposed.Should().BeTrue();
    }

    [Fact]
    public async Task StopTimeout_WithAbandonRun_ReleasesTheResources_AndSaysTheRunWasAbandoned()
    {
        var time = new ManualTimeProvider();
        var resource = new TrackedResource("client");
        var gate = new LifecycleGate(
            start: (context, _) => Task.FromResult(context.Own(resource)),
            run: _ => Bounded.NewGate().Task, // never returns
            options: new LifecycleGateOptions { TimeProvider = time, ShutdownTimeout = TimeSpan.FromSeconds(5), AbandonRunOnTimeout = true });
        await gate.StartAsync().OrHang();

        var stop = gate.StopAsync();
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(5));

        var timeout = (await stop.Invoking(s => s.OrHang()).Should().ThrowAsync<LifecycleStopTimeoutException>()).Which;
        timeout.RunAbandoned.Should().BeTrue();
        resource.IsDisposed.Should().BeTrue();
        gate.State.Should().Be(LifecycleState.Stopped);
    }

    [Fact]
    public async Task AStopStepThatTimesOut_IsNamed_AndIsAwaitedNotReinvokedOnResume()
    {
        var time = new ManualTimeProvider();
        var invocations = 0;
        var flushMayFinish = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: (context, _) =>
            {
                context.OnStop(async _ =>
                {
                    Interlocked.Increment(ref invocations);
                    await flushMayFinish.Task;
                }, "flush");
                return Task.CompletedTask;
            },
            options: new LifecycleGateOptions { TimeProvider = time, ShutdownTimeout = TimeSpan.FromSeconds(2) });
        await gate.StartAsync().OrHang();

        var stop = gate.StopAsync();
        await time.WhenTimersArmed(2).OrHang(); // the step's deadline token and the wait for it
        time.Advance(TimeSpan.FromSeconds(2));
        (await stop.Invoking(s => s.OrHang()).Should().ThrowAsync<LifecycleStopTimeoutException>()).Which.Step.Should().Be("flush");

        var resumed = gate.StopAsync();
        flushMayFinish.SetResult();
        (await resumed.OrHang()).Should().BeTrue();
        invocations.Should().Be(1);
    }

    [Fact]
    public async Task StopCaller_CancellingItsWait_DoesNotCancelTheStop()
    {
        var release = Bounded.NewGate();
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask, stop: _ => release.Task);
        await gate.StartAsync().OrHang();
        using var impatient = new CancellationTokenSource();

        var stop = gate.StopAsync(impatient.Token);
        await impatient.CancelAsync();

        await stop.Invoking(s => s.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        release.SetResult();
        await gate.WhenStopped.OrHang();
        gate.State.Should().Be(LifecycleState.Stopped);
    }

    [Fact]
    public async Task PendingStopStep_NamesWhatTheTeardownWaitsFor_TheRunThenEachStep_AndIsNullOtherwise()
    {
        var cancelSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var runMayReturn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var flushEntered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var flushMayReturn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        LifecycleGate? gate = null;
        string? seenByTheRun = null;
        string? seenByTheStep = null;
        gate = new LifecycleGate(
            start: (context, _) =>
            {
                context.OnStop(
                    async _ =>
                    {
                        seenByTheStep = gate!.PendingStopStep;
                        flushEntered.SetResult();
                        await flushMayReturn.Task;
                    },
                    "flush");
                return Task.CompletedTask;
            },
            run: async token =>
            {
                await Task.Delay(Timeout.Infinite, token).ContinueWith(_ => { }, TaskScheduler.Default);
                seenByTheRun = gate!.PendingStopStep;
                cancelSeen.SetResult();
                await runMayReturn.Task;
            });

        gate.PendingStopStep.Should().BeNull();
        await gate.StartAsync().OrHang();
        gate.PendingStopStep.Should().BeNull("a running gate waits for no step");

        var stop = gate.StopAsync();
        await cancelSeen.Task.OrHang();
        seenByTheRun.Should().Be("run");
        gate.PendingStopStep.Should().Be("run");

        runMayReturn.SetResult();
        await flushEntered.Task.OrHang();
        seenByTheStep.Should().Be("flush");
        gate.PendingStopStep.Should().Be("flush");

        flushMayReturn.SetResult();
        (await stop.OrHang()).Should().BeTrue();
        gate.PendingStopStep.Should().BeNull();
    }
}
