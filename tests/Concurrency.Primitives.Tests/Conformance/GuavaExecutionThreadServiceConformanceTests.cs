using System;
using System.Collections.Concurrent;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using static Concurrency.Primitives.LifecycleState;

namespace Concurrency.Primitives.Tests.Conformance;

/// <summary>
/// Guava's AbstractExecutionThreadServiceTest ported to <see cref="LifecycleGate"/>: startUp is the Start delegate, run()
/// is Run, triggerShutdown is the cancellation of the run's token, and shutDown is the Stop delegate.
/// </summary>
public sealed class GuavaExecutionThreadServiceConformanceTests
{
    [Fact]
    public async Task StartRunAndStop_AreCalledInTurn_EachInItsState_AndTheStopWaitsForTheRunToReturn()
    {
        // Ports Guava AbstractExecutionThreadServiceTest.testServiceStartStop
        var journal = new ConcurrentQueue<string>();
        var runEntered = Bounded.NewGate();
        LifecycleGate? gate = null;
        gate = new LifecycleGate(
            start: (_, _) =>
            {
                journal.Enqueue("startUp in " + gate!.State);
                return Task.CompletedTask;
            },
            run: async token =>
            {
                journal.Enqueue("run in " + gate!.State);
                runEntered.SetResult();
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
                journal.Enqueue("shutDown in " + gate!.State);
                return Task.CompletedTask;
            });
        journal.Should().BeEmpty();

        (await gate.StartAsync().OrHang()).Should().BeTrue();
        journal.Should().StartWith("startUp in Starting");
        gate.State.Should().Be(Running);
        await runEntered.Task.OrHang(); // Guava's enterRun latch: do not stop before run() is invoked

        (await gate.StopAsync().OrHang()).Should().BeTrue();
        gate.State.Should().Be(Stopped);
        journal.Should().Equal("startUp in Starting", "run in Running", "run returned", "shutDown in Stopping");
    }

    [Fact]
    public async Task ThreeStopsAndALateFourth_StopTheRunOnce()
    {
        // Ports Guava AbstractExecutionThreadServiceTest.testServiceStopIdempotence
        var runEntered = Bounded.NewGate();
        var runReturns = 0;
        var stops = 0;
        var gate = new LifecycleGate(
            run: async token =>
            {
                runEntered.SetResult();
                try
                {
                    await Task.Delay(Timeout.Infinite, token);
                }
                finally
                {
                    Interlocked.Increment(ref runReturns);
                }
            },
            stop: _ =>
            {
                Interlocked.Increment(ref stops);
                return Task.CompletedTask;
            });
        await gate.StartAsync().OrHang();
        await runEntered.Task.OrHang();

        var first = gate.StopAsync();
        var second = gate.StopAsync();
        var third = gate.StopAsync();
        (await third.OrHang()).Should().BeFalse();
        gate.State.Should().Be(Stopped);
        (await gate.StopAsync().OrHang()).Should().BeFalse();

        gate.State.Should().Be(Stopped);
        (await Task.WhenAll(first, second).OrHang()).Should().Equal(true, false);
        (runReturns, stops).Should().Be((1, 1));
    }

    [Fact]
    public async Task ARunThatExitsOnItsOwn_LeavesTheGateRunning_AndShutDownWaitsForStopAsync()
    {
        // Ports Guava AbstractExecutionThreadServiceTest.testServiceExitingOnItsOwn
        // Differs by design: Guava calls shutDown() (in RUNNING) and terminates once run() returns. A gate whose run
        // returned stays Running ("the run delegate has been invoked"); its stop steps run when StopAsync asks, in Stopping.
        var exitRun = Bounded.NewGate();
        var runExited = Bounded.NewGate();
        var shutDownStates = new ConcurrentQueue<LifecycleState>();
        LifecycleGate? gate = null;
        gate = new LifecycleGate(
            start: (_, _) => Task.CompletedTask,
            run: async _ =>
            {
                await exitRun.Task;
                runExited.SetResult();
            },
            stop: _ =>
            {
                shutDownStates.Enqueue(gate!.State);
                return Task.CompletedTask;
            });
        await gate.StartAsync().OrHang();

        exitRun.SetResult(); // the run exits voluntarily
        await runExited.Task.OrHang();

        gate.State.Should().Be(Running);
        shutDownStates.Should().BeEmpty();
        (await gate.StopAsync().OrHang()).Should().BeTrue();
        shutDownStates.Should().Equal(Stopping);
        (await gate.StopAsync().OrHang()).Should().BeFalse("a no-op, as Guava's second stopAsync().awaitTerminated()");
        gate.State.Should().Be(Stopped);
        shutDownStates.Should().HaveCount(1);
    }

    [Fact]
    public async Task AStartThatThrows_NeverInvokesTheRun_AndFaultsStartAsyncAndWhenRunningWithItsException()
    {
        // Ports Guava AbstractExecutionThreadServiceTest.testServiceThrowOnStartUp
        var runCalls = 0;
        var startCalls = 0;
        var gate = new LifecycleGate(
            start: (_, _) =>
            {
                Interlocked.Increment(ref startCalls);
                throw new NotSupportedException("kaboom!");
            },
            run: _ =>
            {
                Interlocked.Increment(ref runCalls);
                return Task.CompletedTask;
            });
        var whenRunning = gate.WhenRunning;

        await gate.Invoking(g => g.StartAsync().OrHang()).Should().ThrowAsync<NotSupportedException>().WithMessage("kaboom!");

        await whenRunning.Invoking(t => t.OrHang()).Should().ThrowAsync<NotSupportedException>().WithMessage("kaboom!");
        startCalls.Should().Be(1);
        runCalls.Should().Be(0, "run() should not be called");
        gate.State.Should().Be(StartFailed);
        gate.Fault.Should().BeOfType<NotSupportedException>().Which.Message.Should().Be("kaboom!");
    }

    [Fact]
    public async Task ARunThatThrows_FaultsTheGate_AndShutDownRunsOnlyWhenAStopTearsItDown_WhichRethrows()
    {
        // Ports Guava AbstractExecutionThreadServiceTest.testServiceThrowOnRun
        // Differs by design: Guava calls shutDown() as soon as run() throws and ends FAILED. The gate owns the teardown
        // order: its RunFaulted gate is torn down by the next stop, which runs the stop step and then throws the run's fault.
        var stops = 0;
        var gate = new LifecycleGate(
            run: _ => throw new NotSupportedException("kaboom!"),
            stop: _ =>
            {
                Interlocked.Increment(ref stops);
                return Task.CompletedTask;
            });
        var recorder = new TransitionRecorder(gate);
        await gate.StartAsync().OrHang();

        (await recorder.WhenReached(RunFaulted).OrHang()).Exception.Should().BeOfType<NotSupportedException>().Which.Message.Should().Be("kaboom!");
        stops.Should().Be(0);

        await gate.Invoking(g => g.StopAsync().OrHang()).Should().ThrowAsync<NotSupportedException>().WithMessage("kaboom!");
        stops.Should().Be(1);
        gate.State.Should().Be(Stopped);
    }

    [Fact]
    public async Task ARunThatThrows_ThenAShutDownThatThrowsOnce_TheResumedStopStillRethrowsTheRunsFault()
    {
        // Ports Guava AbstractExecutionThreadServiceTest.testServiceThrowOnRunAndThenAgainOnShutDown
        // Guava keeps "kaboom!" (the run's exception) as the failure cause although shutDown() threw "double kaboom!".
        // The gate: the stop that meets the failing stop step throws that step's exception as is and leaves the gate
        // StopFailed; the stop that resumes and completes the teardown must then throw the run's fault (LifecycleGate
        // remarks: the run's exception "is thrown by the next stop once the teardown is done — it is never swallowed").
        var shutDownCalls = 0;
        var gate = new LifecycleGate(
            run: _ => throw new NotSupportedException("kaboom!"),
            stop: _ => Interlocked.Increment(ref shutDownCalls) == 1
                ? throw new NotSupportedException("double kaboom!")
                : Task.CompletedTask);
        var recorder = new TransitionRecorder(gate);
        await gate.StartAsync().OrHang();
        await recorder.WhenReached(RunFaulted).OrHang();

        await gate.Invoking(g => g.StopAsync().OrHang()).Should().ThrowAsync<NotSupportedException>().WithMessage("double kaboom!");
        gate.State.Should().Be(StopFailed);

        await gate.Invoking(g => g.StopAsync().OrHang()).Should().ThrowAsync<NotSupportedException>().WithMessage("kaboom!");
        gate.State.Should().Be(Stopped);
        shutDownCalls.Should().Be(2);
    }

    [Fact]
    public async Task OrderedTeardown_ARunFaultThenAStepThatFailsOnce_TheResumedExecutionStillThrowsTheRunsFault()
    {
        // Ports Guava AbstractExecutionThreadServiceTest.testServiceThrowOnRunAndThenAgainOnShutDown onto OrderedTeardown on
        // its own (the gate's teardown): "If the run ended on its own with an exception (an OperationCanceledException
        // included, unless its token had been cancelled), that exception is thrown once the teardown has completed."
        using var cancellation = new CancellationTokenSource();
        var teardown = new OrderedTeardown();
        teardown.SetRun(Task.FromException(new NotSupportedException("kaboom!")), cancellation);
        var shutDownCalls = 0;
        teardown.Add(_ => Interlocked.Increment(ref shutDownCalls) == 1
            ? Task.FromException(new NotSupportedException("double kaboom!"))
            : Task.CompletedTask, "shutDown");

        await teardown.Invoking(t => t.ExecuteAsync(TimeSpan.FromSeconds(30)).OrHang()).Should().ThrowAsync<NotSupportedException>().WithMessage("double kaboom!");
        teardown.IsCompleted.Should().BeFalse();

        await teardown.Invoking(t => t.ExecuteAsync(TimeSpan.FromSeconds(30)).OrHang()).Should().ThrowAsync<NotSupportedException>().WithMessage("kaboom!");
        teardown.IsCompleted.Should().BeTrue();
        shutDownCalls.Should().Be(2);
    }

    [Fact]
    public async Task AShutDownThatThrows_AfterTheRunHasReturned_FaultsTheStopAndTheGate()
    {
        // Ports Guava AbstractExecutionThreadServiceTest.testServiceThrowOnShutDown
        var journal = new ConcurrentQueue<string>();
        var gate = new LifecycleGate(
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
                journal.Enqueue("shutDown");
                throw new NotSupportedException("kaboom!");
            });
        await gate.StartAsync().OrHang();
        gate.State.Should().Be(Running);

        await gate.Invoking(g => g.StopAsync().OrHang()).Should().ThrowAsync<NotSupportedException>().WithMessage("kaboom!");

        gate.State.Should().Be(StopFailed);
        gate.Fault.Should().BeOfType<NotSupportedException>().Which.Message.Should().Be("kaboom!");
        journal.Should().Equal("run returned", "shutDown");
    }

    [Fact]
    public async Task AStartCallerWhoseTokenTimesOut_StopsWaiting_WhileTheStartGoesOn()
    {
        // Ports Guava AbstractExecutionThreadServiceTest.testServiceTimeoutOnStartUp
        // Guava's awaitRunning(1 ms) throws TimeoutException naming STARTING; the gate's bounded wait is the caller's
        // token, which "cancels only this caller's wait; the start goes on for everyone else".
        var time = new ManualTimeProvider();
        var startToken = CancellationToken.None;
        var startMayReturn = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: async (_, token) =>
            {
                startToken = token;
                await startMayReturn.Task;
            });
        using var deadline = new CancellationTokenSource(TimeSpan.FromMilliseconds(1), time);

        var start = gate.StartAsync(deadline.Token);
        time.Advance(TimeSpan.FromMilliseconds(1));

        await start.Invoking(s => s.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        gate.State.Should().Be(Starting);
        startMayReturn.SetResult();
        await gate.WhenRunning.OrHang();
        gate.State.Should().Be(Running);
        startToken.IsCancellationRequested.Should().BeFalse("the caller's timeout did not cancel the start");
        await gate.StopAsync().OrHang();
    }

    [Fact]
    public async Task AStopWhileStarting_StillInvokesTheRunWithItsTokenCancelled_AndCallsShutDownOnce()
    {
        // Ports Guava AbstractExecutionThreadServiceTest.testStopWhileStarting_runNotCalled
        // Differs by design: Guava never calls run() after a stop during startUp(). The gate documents that "an accepted
        // start always invokes the run (with its token already cancelled if a stop came first)"; shutDown still runs once,
        // in Stopping.
        var startEntered = Bounded.NewGate();
        var startMayReturn = Bounded.NewGate();
        var runTokens = new ConcurrentQueue<bool>();
        var shutDownStates = new ConcurrentQueue<LifecycleState>();
        var startCalls = 0;
        LifecycleGate? gate = null;
        gate = new LifecycleGate(
            start: async (_, _) =>
            {
                Interlocked.Increment(ref startCalls);
                startEntered.SetResult();
                await startMayReturn.Task; // ignores its token
            },
            run: token =>
            {
                runTokens.Enqueue(token.IsCancellationRequested);
                return Task.CompletedTask;
            },
            stop: _ =>
            {
                shutDownStates.Enqueue(gate!.State);
                return Task.CompletedTask;
            });
        var start = gate.StartAsync();
        await startEntered.Task.OrHang();
        var stop = gate.StopAsync();

        startMayReturn.SetResult();
        await gate.WhenStopped.OrHang();

        gate.State.Should().Be(Stopped);
        startCalls.Should().Be(1);
        runTokens.Should().Equal(true);
        shutDownStates.Should().Equal(Stopping);
        (await start.OrHang()).Should().BeTrue();
        (await stop.OrHang()).Should().BeTrue();
    }

    [Fact]
    public async Task StopWithoutStart_CallsNoDelegate_AndTheGateStaysNotStarted()
    {
        // Ports Guava AbstractExecutionThreadServiceTest.testStop_noStart
        // Differs by design: Guava terminates the NEW service; the gate's stop before start reports false and changes
        // nothing.
        var calls = new ConcurrentQueue<string>();
        var gate = new LifecycleGate(
            start: (_, _) =>
            {
                calls.Enqueue("startUp");
                return Task.CompletedTask;
            },
            run: _ =>
            {
                calls.Enqueue("run");
                return Task.CompletedTask;
            },
            stop: _ =>
            {
                calls.Enqueue("shutDown");
                return Task.CompletedTask;
            });

        (await gate.StopAsync().OrHang()).Should().BeFalse();

        gate.State.Should().Be(NotStarted);
        calls.Should().BeEmpty();
    }

    [Fact]
    public async Task AGateWithOnlyARun_StartsAndStops()
    {
        // Ports Guava AbstractExecutionThreadServiceTest.testDefaultService (default startUp and shutDown)
        var runEntered = Bounded.NewGate();
        var gate = new LifecycleGate(
            run: async token =>
            {
                runEntered.SetResult();
                await Task.Delay(Timeout.Infinite, token);
            });

        (await gate.StartAsync().OrHang()).Should().BeTrue();
        await runEntered.Task.OrHang();
        (await gate.StopAsync().OrHang()).Should().BeTrue();

        gate.State.Should().Be(Stopped);
    }
}
