using System;
using System.Collections.Concurrent;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using static Concurrency.Primitives.LifecycleState;

namespace Concurrency.Primitives.Tests.Conformance;

/// <summary>
/// Guava's AbstractServiceTest (guava-tests/test/com/google/common/util/concurrent) ported to <see cref="LifecycleGate"/>.
/// startAsync/awaitRunning are StartAsync/WhenRunning, stopAsync/awaitTerminated are StopAsync/WhenStopped, doStart and
/// notifyStarted are the Start delegate and its return, doStop is the Stop delegate, notifyFailed is a throwing
/// delegate, listeners are StateChanged, FAILED is the failure state of the phase that failed (StartFailed, RunFaulted or
/// StopFailed) and TERMINATED is Stopped.
/// </summary>
public sealed class GuavaAbstractServiceConformanceTests
{
    [Fact]
    public async Task StartThenStop_CallsStartAndStopOnce_AndRaisesStartingRunningStoppingStopped()
    {
        // Ports Guava AbstractServiceTest.testNoOpServiceStartStop
        var running = false;
        var gate = new LifecycleGate(
            start: (_, _) =>
            {
                running.Should().BeFalse("the start runs once");
                running = true;
                return Task.CompletedTask;
            },
            stop: _ =>
            {
                running.Should().BeTrue("the stop follows a successful start");
                running = false;
                return Task.CompletedTask;
            });
        var recorder = new TransitionRecorder(gate);
        gate.State.Should().Be(NotStarted);

        (await gate.StartAsync().OrHang()).Should().BeTrue();
        gate.State.Should().Be(Running);
        running.Should().BeTrue();

        (await gate.StopAsync().OrHang()).Should().BeTrue();
        gate.State.Should().Be(Stopped);
        running.Should().BeFalse();
        await recorder.WhenSeen(4).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, Stopped));
    }

    [Fact]
    public async Task AwaitingStartAsyncThenStopAsync_LeavesTheGateRunningThenStopped()
    {
        // Ports Guava AbstractServiceTest.testNoOpServiceStartAndWaitStopAndWait
        var gate = NoOpGate();

        (await gate.StartAsync().OrHang()).Should().BeTrue();
        gate.State.Should().Be(Running);
        gate.WhenRunning.IsCompletedSuccessfully.Should().BeTrue();

        (await gate.StopAsync().OrHang()).Should().BeTrue();
        gate.State.Should().Be(Stopped);
        gate.WhenStopped.IsCompletedSuccessfully.Should().BeTrue();
    }

    [Fact]
    public async Task WhenRunningAndWhenStopped_TakenBeforehand_CompleteForAStartAndAStopThatAreNotAwaited()
    {
        // Ports Guava AbstractServiceTest.testNoOpServiceStartAsyncAndAwaitStopAsyncAndAwait
        var gate = NoOpGate();
        var whenRunning = gate.WhenRunning;
        var whenStopped = gate.WhenStopped;

        var start = gate.StartAsync();
        await whenRunning.OrHang();
        gate.State.Should().Be(Running);
        whenStopped.IsCompleted.Should().BeFalse();

        var stop = gate.StopAsync();
        await whenStopped.OrHang();
        gate.State.Should().Be(Stopped);
        (await start.OrHang()).Should().BeTrue();
        (await stop.OrHang()).Should().BeTrue();
    }

    [Fact]
    public async Task TwoStopsIssuedTogether_StopOnce_AndRaiseEachTransitionOnce()
    {
        // Ports Guava AbstractServiceTest.testNoOpServiceStopIdempotence
        var stops = 0;
        var gate = NoOpGate(onStop: () => Interlocked.Increment(ref stops));
        var recorder = new TransitionRecorder(gate);
        await gate.StartAsync().OrHang();

        var first = gate.StopAsync();
        var second = gate.StopAsync();

        (await Task.WhenAll(first, second).OrHang()).Should().Equal(true, false);
        gate.State.Should().Be(Stopped);
        stops.Should().Be(1);
        await recorder.WhenSeen(4).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, Stopped));
    }

    [Fact]
    public async Task AStopAfterACompletedStop_ReportsFalse_AndStopsNothingMore()
    {
        // Ports Guava AbstractServiceTest.testNoOpServiceStopIdempotenceAfterWait
        var stops = 0;
        var gate = NoOpGate(onStop: () => Interlocked.Increment(ref stops));
        await gate.StartAsync().OrHang();
        (await gate.StopAsync().OrHang()).Should().BeTrue();

        var again = gate.StopAsync();

        gate.State.Should().Be(Stopped);
        (await again.OrHang()).Should().BeFalse();
        stops.Should().Be(1);
    }

    [Fact]
    public async Task TwoStopsAwaitedInTurn_ReportTrueThenFalse()
    {
        // Ports Guava AbstractServiceTest.testNoOpServiceStopIdempotenceDoubleWait
        var stops = 0;
        var gate = NoOpGate(onStop: () => Interlocked.Increment(ref stops));
        (await gate.StartAsync().OrHang()).Should().BeTrue();
        gate.State.Should().Be(Running);

        (await gate.StopAsync().OrHang()).Should().BeTrue();
        (await gate.StopAsync().OrHang()).Should().BeFalse();

        gate.State.Should().Be(Stopped);
        stops.Should().Be(1);
    }

    [Fact]
    public async Task AStartAndAStopStillInProgress_HoldTheGateInStartingAndStopping_UntilTheirDelegatesReturn()
    {
        // Ports Guava AbstractServiceTest.testManualServiceStartStop
        var startEntered = Bounded.NewGate();
        var startMayReturn = Bounded.NewGate();
        var stopEntered = Bounded.NewGate();
        var stopMayReturn = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: async (_, _) =>
            {
                startEntered.SetResult();
                await startMayReturn.Task;
            },
            stop: async _ =>
            {
                stopEntered.SetResult();
                await stopMayReturn.Task;
            });
        var recorder = new TransitionRecorder(gate);

        var start = gate.StartAsync();
        await startEntered.Task.OrHang();
        gate.State.Should().Be(Starting);
        gate.WhenRunning.IsCompleted.Should().BeFalse();
        start.IsCompleted.Should().BeFalse();

        startMayReturn.SetResult(); // Guava's notifyStarted()
        (await start.OrHang()).Should().BeTrue();
        gate.State.Should().Be(Running);

        var stop = gate.StopAsync();
        await stopEntered.Task.OrHang();
        gate.State.Should().Be(Stopping);
        gate.WhenStopped.IsCompleted.Should().BeFalse();
        stop.IsCompleted.Should().BeFalse();

        stopMayReturn.SetResult(); // Guava's notifyStopped()
        (await stop.OrHang()).Should().BeTrue();
        gate.State.Should().Be(Stopped);
        await recorder.WhenSeen(4).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, Stopped));
    }

    [Fact]
    public async Task ARunThatReturnsOnItsOwn_RaisesNoEvent_AndTheGateStaysRunningUntilAStop()
    {
        // Ports Guava AbstractServiceTest.testManualServiceNotifyStoppedWhileRunning
        // Differs by design: Guava's notifyStopped() while RUNNING terminates the service without doStop
        // (STARTING, RUNNING, TERMINATED). The gate has no notifyStopped; its counterpart, a run that returns on its own,
        // leaves the gate Running (LifecycleState.Running: "the run delegate has been invoked") and only StopAsync,
        // which calls the stop delegate, stops it.
        var stops = 0;
        var runReturning = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: (_, _) => Task.CompletedTask,
            run: _ =>
            {
                runReturning.SetResult();
                return Task.CompletedTask;
            },
            stop: _ =>
            {
                Interlocked.Increment(ref stops);
                return Task.CompletedTask;
            });
        var recorder = new TransitionRecorder(gate);
        await gate.StartAsync().OrHang();
        await runReturning.Task.OrHang();
        await recorder.WhenSeen(2).OrHang();

        gate.State.Should().Be(Running);
        stops.Should().Be(0);

        (await gate.StopAsync().OrHang()).Should().BeTrue();
        stops.Should().Be(1);
        await recorder.WhenSeen(4).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, Stopped));
    }

    [Fact]
    public async Task AStopWhileStarting_WaitsForAStartThatIgnoresItsToken_ThenStopsTheGateThatStarted()
    {
        // Ports Guava AbstractServiceTest.testManualServiceStopWhileStarting (start that completes anyway)
        // Differs by design: Guava moves to STOPPING at once and never reports RUNNING (STARTING, STOPPING, TERMINATED).
        // The gate's stop during a start cancels the start's token and waits for it to return (LifecycleGate remarks);
        // a start that succeeds anyway is a started gate: Running, then the usual stop, which calls the stop delegate.
        var startEntered = Bounded.NewGate();
        var startTokenCancelled = Bounded.NewGate();
        var startMayReturn = Bounded.NewGate();
        var stops = 0;
        var gate = new LifecycleGate(
            start: async (_, token) =>
            {
                using var registration = token.Register(() => startTokenCancelled.TrySetResult());
                startEntered.SetResult();
                await startMayReturn.Task; // ignores its token
            },
            stop: _ =>
            {
                Interlocked.Increment(ref stops);
                return Task.CompletedTask;
            });
        var recorder = new TransitionRecorder(gate);
        var start = gate.StartAsync();
        await startEntered.Task.OrHang();

        var stop = gate.StopAsync();
        await startTokenCancelled.Task.OrHang();

        gate.State.Should().Be(Starting, "the stop waits for the start to return");
        stops.Should().Be(0, "the stop delegate is not called before the start has succeeded");
        stop.IsCompleted.Should().BeFalse();

        startMayReturn.SetResult();
        (await start.OrHang()).Should().BeTrue();
        (await stop.OrHang()).Should().BeTrue();
        gate.State.Should().Be(Stopped);
        stops.Should().Be(1);
        await recorder.WhenSeen(4).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, Stopped));
    }

    [Fact]
    public async Task AStopWhileStarting_EndsAStartThatHonoursItsToken_InStopped_WithoutRunningOrCallingStop()
    {
        // Ports Guava AbstractServiceTest.testManualServiceStopWhileStarting (start that gives up when asked)
        // Guava reports STARTING, STOPPING, TERMINATED; the gate has no Stopping for a start that never succeeded
        // (there is nothing to tear down): Starting, then Stopped.
        var startEntered = Bounded.NewGate();
        var stops = 0;
        var gate = new LifecycleGate(
            start: async (_, token) =>
            {
                startEntered.SetResult();
                await Task.Delay(Timeout.Infinite, token);
            },
            stop: _ =>
            {
                Interlocked.Increment(ref stops);
                return Task.CompletedTask;
            });
        var recorder = new TransitionRecorder(gate);
        var whenRunning = gate.WhenRunning;
        var start = gate.StartAsync();
        await startEntered.Task.OrHang();

        (await gate.StopAsync().OrHang()).Should().BeTrue("this stop ended the start");

        await start.Invoking(s => s.OrHang()).Should().ThrowAsync<OperationCanceledException>().WithMessage("The start of gate 'LifecycleGate' was cancelled by a stop.");
        whenRunning.IsCanceled.Should().BeTrue("Guava's awaitRunning fails once the service stops while starting");
        gate.State.Should().Be(Stopped);
        stops.Should().Be(0);
        await recorder.WhenSeen(2).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Stopped));
    }

    [Fact]
    public async Task AStopWhileStarting_WhoseReleaseOfWhatTheStartAcquiredFails_ThrowsThatFailure_AndCanBeResumed()
    {
        // Ports Guava AbstractServiceTest.testManualServiceStopWhileStarting combined with
        // testFailingServiceStopAndWait_stopFailing: Guava's stop during STARTING whose stop fails ends FAILED and
        // awaitTerminated() throws the cause. The gate: a step registered with LifecycleContext.OnStop is "a stop step the
        // gate runs on stop"; StopAsync: "a stop step's exception ... is thrown as is. After a failed stop the gate is
        // StopFailed; call StopAsync again to resume."
        var failure = new InvalidOperationException("release failed");
        var releases = 0;
        var startEntered = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: async (context, token) =>
            {
                context.OnStop(_ => Interlocked.Increment(ref releases) == 1 ? Task.FromException(failure) : Task.CompletedTask, "release");
                startEntered.SetResult();
                await Task.Delay(Timeout.Infinite, token);
            });
        var start = gate.StartAsync();
        await startEntered.Task.OrHang();

        var stop = gate.StopAsync();

        await start.Invoking(s => s.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        (await stop.Invoking(s => s.OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(failure);
        gate.State.Should().Be(StopFailed);

        (await gate.StopAsync().OrHang()).Should().BeTrue();
        releases.Should().Be(2);
        gate.State.Should().Be(Stopped);
    }

    [Fact]
    public async Task StopRequestedTwiceWhileStarting_RaisesStoppingOnce_AndCallsStopOnce()
    {
        // Ports Guava AbstractServiceTest.testManualServiceStopMultipleTimesWhileStarting
        var startEntered = Bounded.NewGate();
        var startMayReturn = Bounded.NewGate();
        var stops = 0;
        var gate = new LifecycleGate(
            start: async (_, _) =>
            {
                startEntered.SetResult();
                await startMayReturn.Task;
            },
            stop: _ =>
            {
                Interlocked.Increment(ref stops);
                return Task.CompletedTask;
            });
        var recorder = new TransitionRecorder(gate);
        var start = gate.StartAsync();
        await startEntered.Task.OrHang();

        var first = gate.StopAsync();
        var second = gate.StopAsync();
        startMayReturn.SetResult();

        (await Task.WhenAll(first, second).OrHang()).Should().Equal(true, false);
        (await start.OrHang()).Should().BeTrue();
        await recorder.WhenReached(Stopped).OrHang();
        recorder.Events.Count(e => e.Current == Stopping).Should().Be(1);
        stops.Should().Be(1);
    }

    [Fact]
    public async Task StopBeforeStart_IsANoOp_ThatRaisesNoEventAndCallsNoDelegate()
    {
        // Ports Guava AbstractServiceTest.testManualServiceStopWhileNew
        // Differs by design: Guava terminates a NEW service (one TERMINATED event); the gate documents "Stop before start
        // reports false" (StopAsync returns false "if it was not started") and stays NotStarted.
        var starts = 0;
        var stops = 0;
        var gate = NoOpGate(onStart: () => Interlocked.Increment(ref starts), onStop: () => Interlocked.Increment(ref stops));
        var recorder = new TransitionRecorder(gate);

        (await gate.StopAsync().OrHang()).Should().BeFalse();

        gate.State.Should().Be(NotStarted);
        gate.WhenStopped.IsCompleted.Should().BeFalse("the gate never started, so it has not stopped either");
        recorder.Events.Should().BeEmpty();
        (starts, stops).Should().Be((0, 0));
    }

    [Fact]
    public async Task AStartThatFails_RaisesStartingThenStartFailed_CarryingTheFailure()
    {
        // Ports Guava AbstractServiceTest.testManualServiceFailWhileStarting
        var failure = new InvalidOperationException("start failed");
        var startMayFail = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: async (_, _) =>
            {
                await startMayFail.Task;
                throw failure;
            });
        var recorder = new TransitionRecorder(gate);
        var start = gate.StartAsync();

        startMayFail.SetResult(); // Guava's notifyFailed() while STARTING

        (await start.Invoking(s => s.OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(failure);
        await recorder.WhenSeen(2).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, StartFailed));
        recorder.Events[1].Exception.Should().BeSameAs(failure);
    }

    [Fact]
    public async Task ARunThatFaults_RaisesStartingRunningRunFaulted_CarryingTheFault()
    {
        // Ports Guava AbstractServiceTest.testManualServiceFailWhileRunning
        var fault = new InvalidOperationException("run failed");
        var runMayFail = Bounded.NewGate();
        var gate = new LifecycleGate(
            run: async _ =>
            {
                await runMayFail.Task;
                throw fault;
            });
        var recorder = new TransitionRecorder(gate);
        await gate.StartAsync().OrHang();

        runMayFail.SetResult(); // Guava's notifyFailed() while RUNNING

        (await recorder.WhenReached(RunFaulted).OrHang()).Exception.Should().BeSameAs(fault);
        gate.State.Should().Be(RunFaulted);
        gate.Fault.Should().BeSameAs(fault);
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, RunFaulted));
        await gate.Invoking(g => g.StopAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("run failed");
    }

    [Fact]
    public async Task AStopThatFails_RaisesStartingRunningStoppingStopFailed_CarryingTheFailure()
    {
        // Ports Guava AbstractServiceTest.testManualServiceFailWhileStopping
        var failure = new InvalidOperationException("stop failed");
        var stopMayFail = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: (_, _) => Task.CompletedTask,
            stop: async _ =>
            {
                await stopMayFail.Task;
                throw failure;
            });
        var recorder = new TransitionRecorder(gate);
        await gate.StartAsync().OrHang();
        var stop = gate.StopAsync();

        stopMayFail.SetResult(); // Guava's notifyFailed() while STOPPING

        (await stop.Invoking(s => s.OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(failure);
        gate.State.Should().Be(StopFailed);
        gate.Fault.Should().BeSameAs(failure);
        await recorder.WhenSeen(4).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, StopFailed));
        recorder.Events[3].Exception.Should().BeSameAs(failure);
    }

    [Fact]
    public async Task ARunThatEndsOnItsOwn_NeitherCallsStopNorReleasesResources_UntilAStopIsRequested()
    {
        // Ports Guava AbstractServiceTest.testManualServiceUnrequestedStop
        // Differs by design: Guava's unrequested notifyStopped() terminates the service; a gate whose run ended stays
        // Running, keeps what its start acquired, and answers StartAsync from its fast path until StopAsync tears it down.
        var stops = 0;
        var client = new TrackedResource("client");
        var runReturning = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: (context, _) => Task.FromResult(context.Own(client)),
            run: _ =>
            {
                runReturning.SetResult();
                return Task.CompletedTask;
            },
            stop: _ =>
            {
                Interlocked.Increment(ref stops);
                return Task.CompletedTask;
            });
        await gate.StartAsync().OrHang();
        await runReturning.Task.OrHang();

        gate.State.Should().Be(Running);
        (await gate.StartAsync().OrHang()).Should().BeFalse("still running");
        stops.Should().Be(0);
        client.IsDisposed.Should().BeFalse();

        (await gate.StopAsync().OrHang()).Should().BeTrue();
        stops.Should().Be(1);
        client.IsDisposed.Should().BeTrue();
        gate.State.Should().Be(Stopped);
    }

    [Fact]
    public async Task WhenStopped_TakenBeforeTheStart_CompletesWhenTheStopTearsTheGateDown()
    {
        // Ports Guava AbstractServiceTest.testAwaitTerminated
        var gate = NoOpGate();
        var whenStopped = gate.WhenStopped;
        await gate.StartAsync().OrHang();
        gate.State.Should().Be(Running);
        whenStopped.IsCompleted.Should().BeFalse();

        var stop = gate.StopAsync();

        await whenStopped.OrHang();
        gate.State.Should().Be(Stopped);
        (await stop.OrHang()).Should().BeTrue();
    }

    [Fact]
    public async Task WhenStopped_OfAStartCancelledByAStop_Completes_EvenWhenARestartFollowsAtOnce()
    {
        // Ports Guava AbstractServiceTest.testAwaitTerminated (a waiter taken beforehand is released by the stop), raced
        // against an immediate restart (AllowRestart): WhenStopped "completes when the gate reaches Stopped", and the
        // restart's WhenStopped refers to the new cycle, which is not stopped.
        var rounds = 2_000 * StressSettings.Scale;
        for (var round = 0; round < rounds; round++)
        {
            var (gate, whenStopped, firstStart) = await StartACycleThatAStopWillCancelAsync();

            var restart = Task.Run(() => RestartAsSoonAsStoppedAsync(gate));
            var stop = Task.Run(() => gate.StopAsync());
            await Task.WhenAll(stop, restart).OrHang();
            await firstStart.Invoking(s => s.OrHang()).Should().ThrowAsync<OperationCanceledException>();

            whenStopped.IsCompleted.Should().BeTrue($"the first cycle reached Stopped (round {round})");
            gate.State.Should().Be(Running);
            gate.WhenStopped.IsCompleted.Should().BeFalse($"the restarted cycle has not stopped (round {round})");
        }
    }

    [Fact]
    public async Task AStopThatCancelledTheStart_ReportsTrue_EvenWhenARestartFollowsAtOnce()
    {
        // Ports Guava AbstractServiceTest.testManualServiceStopWhileStarting (the stop ends the start), raced against an
        // immediate restart (AllowRestart). StopAsync returns "true if this call stopped the gate", as it does without the
        // restart (AStopWhileStarting_EndsAStartThatHonoursItsToken_InStopped_WithoutRunningOrCallingStop).
        var rounds = 2_000 * StressSettings.Scale;
        for (var round = 0; round < rounds; round++)
        {
            var (gate, _, firstStart) = await StartACycleThatAStopWillCancelAsync();

            var restart = Task.Run(() => RestartAsSoonAsStoppedAsync(gate));
            var stop = Task.Run(() => gate.StopAsync());
            await Task.WhenAll(stop, restart).OrHang();
            await firstStart.Invoking(s => s.OrHang()).Should().ThrowAsync<OperationCanceledException>().WithMessage("*cancelled by a stop*");

            (await stop).Should().BeTrue($"this stop ended the first cycle's start (round {round})");
            (await restart).Should().BeTrue();
        }
    }

    [Fact]
    public async Task WhenStopped_OfACompletedStop_Completes_EvenWhenARestartFollowsAtOnce()
    {
        // Ports Guava AbstractServiceTest.testAwaitTerminated (a waiter taken while running is released by the stop),
        // raced against an immediate restart (AllowRestart). The window is a few instructions wide: about one round in
        // 25,000 shows it on two cores, so the test runs until the first violation or its round budget.
        var rounds = 150_000 * StressSettings.Scale;
        var budget = System.Diagnostics.Stopwatch.StartNew();
        for (var round = 0; round < rounds && budget.Elapsed < StressSettings.TimeLimit; round++)
        {
            var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask, options: new LifecycleGateOptions { AllowRestart = true });
            await gate.StartAsync().OrHang();
            var whenStopped = gate.WhenStopped;

            var restart = Task.Run(() => RestartAsSoonAsStoppedAsync(gate));
            var stop = Task.Run(() => gate.StopAsync());

            (await stop.OrHang()).Should().BeTrue();
            (await restart.OrHang()).Should().BeTrue();
            whenStopped.IsCompleted.Should().BeTrue($"the first cycle reached Stopped (round {round})");
            gate.State.Should().Be(Running);
            gate.WhenStopped.IsCompleted.Should().BeFalse($"the restarted cycle has not stopped (round {round})");
        }
    }

    [Fact]
    public async Task WhenStopped_WaitsThroughAFaultedRun_AndCompletesOnceAStopHasTornTheGateDown()
    {
        // Ports Guava AbstractServiceTest.testAwaitTerminated_FailedService
        // Differs by design: Guava's awaitTerminated() throws IllegalStateException(cause) once the service FAILED, a
        // terminal state. A RunFaulted gate still owes its teardown (LifecycleGate remarks: the run's exception
        // "is thrown by the next stop once the teardown is done"), so WhenStopped, which "completes when the gate reaches
        // Stopped", waits, and StopAsync is what reports the fault.
        var fault = new InvalidOperationException("run failed");
        var runMayFail = Bounded.NewGate();
        var gate = new LifecycleGate(
            run: async _ =>
            {
                await runMayFail.Task;
                throw fault;
            });
        var recorder = new TransitionRecorder(gate);
        var whenStopped = gate.WhenStopped;
        await gate.StartAsync().OrHang();

        runMayFail.SetResult();
        await recorder.WhenReached(RunFaulted).OrHang();

        gate.State.Should().Be(RunFaulted);
        whenStopped.IsCompleted.Should().BeFalse();
        (await gate.Invoking(g => g.StopAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(fault);
        await whenStopped.OrHang();
        gate.State.Should().Be(Stopped);
    }

    [Fact]
    public async Task WhenStopped_OfAGateWhoseStartFailed_WaitsForARetryOrTheDisposal_WhileWhenRunningFaults()
    {
        // Ports the failed(from == STARTING) checks of Guava AbstractServiceTest.RecordingListener: awaitRunning() and
        // awaitTerminated() both throw the cause. Differs by design for awaitTerminated: a gate whose start failed may be
        // started again (StartFailed: "a new StartAsync retries"), so WhenStopped, which "completes when the gate reaches
        // Stopped, or is closed without ever having started", waits; WhenRunning "faults with the start's exception".
        var failure = new InvalidOperationException("deliberate");
        var gate = new LifecycleGate(start: (_, _) => Task.FromException(failure));
        var whenRunning = gate.WhenRunning;
        var whenStopped = gate.WhenStopped;

        await gate.Invoking(g => g.StartAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>();

        (await whenRunning.Invoking(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(failure);
        gate.State.Should().Be(StartFailed);
        gate.Fault.Should().BeSameAs(failure);
        whenStopped.IsCompleted.Should().BeFalse();
        await gate.DisposeAsync().OrHang();
        await whenStopped.OrHang();
    }

    [Fact]
    public async Task DelegatesCompletingOnOtherThreads_SeeStartingRunningAndStopping_InTurn()
    {
        // Ports Guava AbstractServiceTest.testThreadedServiceStartAndWaitStopAndWait
        var service = new ThreadedService();
        var recorder = new TransitionRecorder(service.Gate);

        await service.Gate.StartAsync().OrHang();
        service.Gate.State.Should().Be(Running);
        await service.RunChecked.OrHang(); // Guava's awaitRunChecks()

        await service.Gate.StopAsync().OrHang();
        service.Gate.State.Should().Be(Stopped);

        service.Seen.Should().Equal(
            "start: Starting",
            "start, another thread: Starting",
            "run: Running",
            "run returned",
            "stop: Stopping",
            "stop, another thread: Stopping");
        await recorder.WhenSeen(4).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, Stopped));
    }

    [Fact]
    public async Task AStopJoinedByASecondStop_IsCompleteForBoth_OnceTheRunHasReturned()
    {
        // Ports Guava AbstractServiceTest.testThreadedServiceStopIdempotence
        var service = new ThreadedService();
        await service.Gate.StartAsync().OrHang();
        await service.RunChecked.OrHang();

        var first = service.Gate.StopAsync();
        (await service.Gate.StopAsync().OrHang()).Should().BeFalse("it joined the first stop");

        service.Gate.State.Should().Be(Stopped);
        service.Seen.Should().Contain("run returned");
        (await first.OrHang()).Should().BeTrue();
        service.StopCalls.Should().Be(1);
    }

    [Fact]
    public async Task AStopAfterACompletedStopOfARun_ReportsFalse_AndTheRunReturnedOnce()
    {
        // Ports Guava AbstractServiceTest.testThreadedServiceStopIdempotenceAfterWait
        var service = new ThreadedService();
        await service.Gate.StartAsync().OrHang();
        await service.RunChecked.OrHang();

        (await service.Gate.StopAsync().OrHang()).Should().BeTrue();
        var again = service.Gate.StopAsync();

        service.Gate.State.Should().Be(Stopped);
        (await again.OrHang()).Should().BeFalse();
        service.Seen.Count(s => s == "run returned").Should().Be(1);
        service.StopCalls.Should().Be(1);
    }

    [Fact]
    public async Task TwoStopsOfARunAwaitedInTurn_ReportTrueThenFalse()
    {
        // Ports Guava AbstractServiceTest.testThreadedServiceStopIdempotenceDoubleWait
        var service = new ThreadedService();
        await service.Gate.StartAsync().OrHang();
        service.Gate.State.Should().Be(Running);
        await service.RunChecked.OrHang();

        (await service.Gate.StopAsync().OrHang()).Should().BeTrue();
        (await service.Gate.StopAsync().OrHang()).Should().BeFalse();

        service.Gate.State.Should().Be(Stopped);
        service.StopCalls.Should().Be(1);
    }

    [Fact]
    public async Task AStartThatFailsAndThenFailsAgainReleasingWhatItAcquired_ReportsTheFirstFailure()
    {
        // Ports Guava AbstractServiceTest.testManualServiceFailureIdempotence
        // Guava calls notifyFailed twice and keeps the first cause. The gate's second failure during a failed start is the
        // release of what the start registered: it is logged (event 2009), and the start's own failure stays the one
        // StartAsync and WhenRunning report. Because something is still unreleased, the gate waits in StopFailed (its Fault
        // is the release's failure) so that StopAsync can finish the release.
        var logger = new RecordingLogger();
        var first = new InvalidOperationException("1");
        var second = new InvalidOperationException("2");
        var gate = new LifecycleGate(
            start: (context, _) =>
            {
                context.OnStop(_ => throw second, "release");
                throw first;
            },
            options: new LifecycleGateOptions { Logger = logger });
        var recorder = new TransitionRecorder(gate);
        var whenRunning = gate.WhenRunning;

        (await gate.Invoking(g => g.StartAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(first);

        (await whenRunning.Invoking(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(first);
        await recorder.WhenSeen(2).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, StopFailed));
        recorder.Events[1].Exception.Should().BeSameAs(second);
        gate.Fault.Should().BeSameAs(second);
        logger.Entries.Should().ContainSingle(e => e.EventId == 2009).Which.Exception.Should().BeSameAs(second);
    }

    [Fact]
    public async Task StopBeforeStart_DoesNotPreventALaterStart()
    {
        // Ports Guava AbstractServiceTest.testStopUnstartedService
        // Differs by design: Guava terminates a NEW service, so its later startAsync() throws IllegalStateException. The
        // gate's stop before start "reports false" and changes nothing, so a later start starts it.
        var gate = NoOpGate();
        var recorder = new TransitionRecorder(gate);

        (await gate.StopAsync().OrHang()).Should().BeFalse();
        gate.State.Should().Be(NotStarted);

        (await gate.StartAsync().OrHang()).Should().BeTrue();
        gate.State.Should().Be(Running);
        await recorder.WhenSeen(2).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running));
        await gate.StopAsync().OrHang();
    }

    [Fact]
    public async Task AStartReturningAFaultedTask_FaultsStartAsyncAndWhenRunning_WithThatSameException()
    {
        // Ports Guava AbstractServiceTest.testFailingServiceStartAndWait
        // Guava wraps the cause in IllegalStateException; the gate throws "the start delegate's own exception" as is.
        var failure = new InvalidOperationException("deliberate");
        var gate = new LifecycleGate(start: (_, _) => Task.FromException(failure));
        var recorder = new TransitionRecorder(gate);
        var whenRunning = gate.WhenRunning;

        (await gate.Invoking(g => g.StartAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(failure);

        (await whenRunning.Invoking(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(failure);
        gate.State.Should().Be(StartFailed);
        await recorder.WhenSeen(2).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, StartFailed));
    }

    [Fact]
    public async Task AStopReturningAFaultedTask_FaultsStopAsyncWithThatSameException_AndLeavesTheGateStopFailed()
    {
        // Ports Guava AbstractServiceTest.testFailingServiceStopAndWait_stopFailing
        var failure = new InvalidOperationException("deliberate");
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask, stop: _ => Task.FromException(failure));
        var recorder = new TransitionRecorder(gate);
        await gate.StartAsync().OrHang();

        (await gate.Invoking(g => g.StopAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(failure);

        gate.State.Should().Be(StopFailed);
        await recorder.WhenSeen(4).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, StopFailed));
        recorder.Events[3].Exception.Should().BeSameAs(failure);
    }

    [Fact]
    public async Task ARunReturningAFaultedTaskAtOnce_LetsTheStartSucceed_ThenFaultsTheGate()
    {
        // Ports Guava AbstractServiceTest.testFailingServiceStopAndWait_runFailing
        // Differs by design: Guava's awaitRunning() throws because the service is already FAILED when it is called. The
        // gate's start succeeded before the run was invoked, so StartAsync reports success and WhenRunning ("completes when
        // the gate reaches Running") completes; the run's fault then moves the gate to RunFaulted.
        var fault = new InvalidOperationException("deliberate");
        var gate = new LifecycleGate(run: _ => Task.FromException(fault));
        var recorder = new TransitionRecorder(gate);

        (await gate.StartAsync().OrHang()).Should().BeTrue();

        await gate.WhenRunning.OrHang();
        (await recorder.WhenReached(RunFaulted).OrHang()).Exception.Should().BeSameAs(fault);
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, RunFaulted));
    }

    [Fact]
    public async Task AStartThatThrowsSynchronously_FaultsStartAsyncWithThatException()
    {
        // Ports Guava AbstractServiceTest.testThrowingServiceStartAndWait
        var failure = new InvalidOperationException("deliberate");
        var stops = 0;
        var gate = new LifecycleGate(
            start: (_, _) => throw failure,
            stop: _ =>
            {
                Interlocked.Increment(ref stops);
                return Task.CompletedTask;
            });
        var recorder = new TransitionRecorder(gate);

        (await gate.Invoking(g => g.StartAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(failure);

        gate.State.Should().Be(StartFailed);
        await recorder.WhenSeen(2).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, StartFailed));
        (await gate.StopAsync().OrHang()).Should().BeFalse("a gate whose start failed was never started");
        stops.Should().Be(0, "Guava's StartThrowingService.doStop() fails the test if called");
    }

    [Fact]
    public async Task AStopThatThrowsSynchronously_FaultsStopAsyncWithThatException()
    {
        // Ports Guava AbstractServiceTest.testThrowingServiceStopAndWait_stopThrowing
        var failure = new InvalidOperationException("deliberate");
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask, stop: _ => throw failure);
        var recorder = new TransitionRecorder(gate);
        await gate.StartAsync().OrHang();

        (await gate.Invoking(g => g.StopAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(failure);

        gate.State.Should().Be(StopFailed);
        await recorder.WhenSeen(4).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, StopFailed));
    }

    [Fact]
    public async Task ARunThatThrowsSynchronously_FaultsTheGate_AndTheNextStopRethrowsItAfterTheTeardown()
    {
        // Ports Guava AbstractServiceTest.testThrowingServiceStopAndWait_runThrowing
        // Differs by design: Guava ends FAILED and awaitTerminated() throws IllegalStateException(cause). A RunFaulted
        // gate is torn down by the next stop, which then throws the run's exception as is and leaves the gate Stopped.
        var fault = new InvalidOperationException("deliberate");
        var stops = 0;
        var gate = new LifecycleGate(
            run: _ => throw fault,
            stop: _ =>
            {
                Interlocked.Increment(ref stops);
                return Task.CompletedTask;
            });
        var recorder = new TransitionRecorder(gate);
        await gate.StartAsync().OrHang();
        await recorder.WhenReached(RunFaulted).OrHang();
        stops.Should().Be(0, "nothing is torn down until a stop asks for it");

        (await gate.Invoking(g => g.StopAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(fault);

        gate.State.Should().Be(Stopped);
        stops.Should().Be(1);
        await gate.WhenStopped.OrHang();
        await recorder.WhenSeen(5).OrHang();
        recorder.Transitions.Should().Equal(
            (NotStarted, Starting), (Starting, Running), (Running, RunFaulted), (RunFaulted, Stopping), (Stopping, Stopped));
    }

    [Fact]
    public async Task OnlyTheTransitionIntoAFailureState_CarriesAnException()
    {
        // Ports Guava AbstractServiceTest.testFailureCause_throwsIfNotFailed
        // Guava's failureCause() throws unless FAILED; the gate's counterparts are LifecycleStateChangedEventArgs.Exception,
        // "the failure that caused a transition to StartFailed, RunFaulted or StopFailed; otherwise null", and
        // LifecycleGate.Fault, "null in any other state".
        var failure = new InvalidOperationException("deliberate");
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask, stop: _ => Task.FromException(failure));
        var recorder = new TransitionRecorder(gate);
        await gate.StartAsync().OrHang();
        await recorder.WhenSeen(2).OrHang();
        recorder.Events.Should().OnlyContain(e => e.Exception == null);
        gate.Fault.Should().BeNull();

        await gate.Invoking(g => g.StopAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>();

        await recorder.WhenSeen(4).OrHang();
        recorder.Events.Take(3).Should().OnlyContain(e => e.Exception == null);
        recorder.Events[3].Current.Should().Be(StopFailed);
        recorder.Events[3].Exception.Should().BeSameAs(failure);
        gate.Fault.Should().BeSameAs(failure);
    }

    [Fact]
    public async Task AHandlerAddedAfterAFailedStart_DoesNotBlockAStopFromAnotherThread()
    {
        // Ports Guava AbstractServiceTest.testAddListenerAfterFailureDoesntCauseDeadlock
        var gate = new LifecycleGate(start: (_, _) => Task.FromException(new InvalidOperationException("deliberate")));
        var startEvents = new TransitionRecorder(gate);
        await gate.Invoking(g => g.StartAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>();
        gate.State.Should().Be(StartFailed);
        await startEvents.WhenSeen(2).OrHang(); // events are raised on their own work item: let the start's be done
        var recorder = new TransitionRecorder(gate);

        var stopped = await Task.Run(() => gate.StopAsync()).OrHang();

        stopped.Should().BeFalse("a gate whose start failed was never started");
        gate.State.Should().Be(StartFailed);
        recorder.Events.Should().BeEmpty();
    }

    [Fact]
    public async Task EveryHandler_CanUseTheGateFromAnotherThread_BecauseNoLockIsHeldWhileItRuns()
    {
        // Ports the intent of Guava AbstractServiceTest.testAddListenerAfterFailureDoesntCauseDeadlock ("internally
        // stopAsync() grabs a lock"): listeners run outside the service's monitor. A same-thread call cannot show this
        // (the gate's lock is reentrant), so each handler waits for another thread that reads WhenRunning and WhenStopped,
        // which take the gate's lock.
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask, stop: _ => Task.CompletedTask);
        var lockFree = new ConcurrentQueue<(LifecycleState State, bool Answered)>();
        gate.StateChanged += (_, e) =>
        {
            var otherThread = Task.Run(() => (gate.WhenRunning, gate.WhenStopped));
#pragma warning disable VSTHRD002 // a synchronous wait inside the handler is the point of the test
            lockFree.Enqueue((e.Current, otherThread.Wait(Bounded.HangLimit)));
#pragma warning restore VSTHRD002
        };
        var recorder = new TransitionRecorder(gate);

        await gate.StartAsync().OrHang();
        await gate.StopAsync().OrHang();

        await recorder.WhenSeen(4).OrHang();
        lockFree.Should().Equal((Starting, true), (Running, true), (Stopping, true), (Stopped, true));
    }

    [Fact]
    public async Task ARunningHandlerThatWaitsSynchronouslyForTheStart_DoesNotDeadlock()
    {
        // Ports Guava AbstractServiceTest.testListenerDoesntDeadlockOnStartAndWaitFromRunning
        var gate = new LifecycleGate(run: token => Task.Delay(Timeout.Infinite, token));
        var handlerReturned = Bounded.NewGate<(bool WhenRunning, bool StartAsync, bool Started)>();
        gate.StateChanged += (_, e) =>
        {
            if (e.Current == Running)
            {
#pragma warning disable VSTHRD002 // a synchronous wait inside the handler is the point of the test
                var start = gate.StartAsync();
                handlerReturned.TrySetResult((gate.WhenRunning.Wait(Bounded.HangLimit), start.Wait(Bounded.HangLimit), start.Result));
#pragma warning restore VSTHRD002
            }
        };

        (await gate.StartAsync().OrHang()).Should().BeTrue();

        (await handlerReturned.Task.OrHang()).Should().Be((true, true, false));
        (await gate.StopAsync().OrHang()).Should().BeTrue();
    }

    [Fact]
    public async Task AStoppedHandlerThatStopsAndWaitsSynchronously_DoesNotDeadlockAStopWaitedForOnAnotherThread()
    {
        // Ports Guava AbstractServiceTest.testListenerDoesntDeadlockOnStopAndWaitFromTerminated
        var gate = new LifecycleGate(run: token => Task.Delay(Timeout.Infinite, token));
        var handlerReturned = Bounded.NewGate<bool>();
        gate.StateChanged += (_, e) =>
        {
            if (e.Current == Stopped)
            {
#pragma warning disable VSTHRD002 // a synchronous wait inside the handler is the point of the test
                handlerReturned.TrySetResult(gate.StopAsync().Wait(Bounded.HangLimit));
#pragma warning restore VSTHRD002
            }
        };
        await gate.StartAsync().OrHang();

#pragma warning disable VSTHRD002 // Guava's other thread blocks in stopAsync().awaitTerminated()
        var otherThread = Task.Run(() => gate.StopAsync().Wait(Bounded.HangLimit) && gate.WhenStopped.Wait(Bounded.HangLimit));
#pragma warning restore VSTHRD002

        (await otherThread.OrHang()).Should().BeTrue();
        (await handlerReturned.Task.OrHang()).Should().BeTrue();
        gate.State.Should().Be(Stopped);
    }

    [Fact]
    public async Task RegisteringWithTheStartContextAfterTheStartReturned_IsRefused()
    {
        // Ports Guava AbstractServiceTest.testNotifyStartedWhenNotStarting
        // Guava refuses a start-phase call (notifyStarted) outside STARTING with IllegalStateException; the gate's
        // start-phase API is the LifecycleContext, "valid only while the start delegate runs".
        LifecycleContext? kept = null;
        var gate = new LifecycleGate(
            start: (context, _) =>
            {
                kept = context;
                return Task.CompletedTask;
            });
        await gate.StartAsync().OrHang();
        var late = new TrackedResource("late");

        kept!.Invoking(c => c.Own(late)).Should().Throw<InvalidOperationException>()
            .WithMessage("The start delegate has returned; register resources with the LifecycleContext only while it runs.");
        kept!.Invoking(c => c.OnStop(_ => Task.CompletedTask, "late")).Should().Throw<InvalidOperationException>();

        await gate.StopAsync().OrHang();
        late.IsDisposed.Should().BeFalse("a refused registration is not released by the gate");
    }

    [Fact]
    public async Task AnAbandonedRunThatFaultsAfterTheGateStopped_DoesNotChangeTheStateOrRaiseAnEvent()
    {
        // Ports Guava AbstractServiceTest.testNotifyFailedWhenTerminated
        // Guava refuses notifyFailed() on a TERMINATED service. The gate's only late failure is a run abandoned by
        // AbandonRunOnTimeout that faults after the gate is Stopped: the gate must stay Stopped.
        var time = new ManualTimeProvider();
        var fault = new InvalidOperationException("late fault");
        var runMayFail = Bounded.NewGate();
        var runInvoked = Bounded.NewGate<Task>();
        var gate = new LifecycleGate(
            run: _ =>
            {
                var task = FailWhenReleasedAsync(runMayFail.Task, fault); // ignores its token
                runInvoked.SetResult(task);
                return task;
            },
            options: new LifecycleGateOptions { TimeProvider = time, ShutdownTimeout = TimeSpan.FromSeconds(5), AbandonRunOnTimeout = true });
        var recorder = new TransitionRecorder(gate);
        await gate.StartAsync().OrHang();
        var run = await runInvoked.Task.OrHang(); // the run is invoked on the pool after the start

        var stop = gate.StopAsync();
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(5));
        (await stop.Invoking(s => s.OrHang()).Should().ThrowAsync<LifecycleStopTimeoutException>()).Which.RunAbandoned.Should().BeTrue();
        gate.State.Should().Be(Stopped);

        runMayFail.SetResult();
        await run.Invoking(r => r.OrHang()).Should().ThrowAsync<InvalidOperationException>();

        gate.State.Should().Be(Stopped);
        (await gate.StopAsync().OrHang()).Should().BeFalse();
        await recorder.WhenSeen(4).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, Stopped));
    }

    [Fact]
    public async Task StartAsyncOnARunningGate_ReportsFalse_AndStartsNothingMore()
    {
        // Ports the start half of Guava AbstractServiceTest.testNoOpServiceStartStopIdempotence (Guava <= 14, where start()
        // was idempotent). Current Guava throws IllegalStateException from a second startAsync(); the gate's StartAsync is
        // idempotent by design ("false if it was already running").
        var starts = 0;
        var gate = NoOpGate(onStart: () => Interlocked.Increment(ref starts));
        var recorder = new TransitionRecorder(gate);

        (await gate.StartAsync().OrHang()).Should().BeTrue();
        (await gate.StartAsync().OrHang()).Should().BeFalse();
        (await Task.WhenAll(gate.StartAsync(), gate.StartAsync()).OrHang()).Should().Equal(false, false);

        gate.State.Should().Be(Running);
        starts.Should().Be(1);
        await recorder.WhenSeen(2).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running));
        await gate.StopAsync().OrHang();
    }

    [Fact]
    public async Task ManyThreadsStartingAtOnce_ShareOneStart_AndExactlyOneOfThemReportsIt()
    {
        // Ports Guava AbstractServiceTest.testThreadedServiceStartStopIdempotence (Guava <= 14: start() from more than one
        // caller shares one start), widened to many threads racing the first start.
        var starts = 0;
        var startMayReturn = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: async (_, _) =>
            {
                Interlocked.Increment(ref starts);
                await startMayReturn.Task;
            });
        var recorder = new TransitionRecorder(gate);
        var go = Bounded.NewGate();
        var callers = Enumerable.Range(0, 32)
            .Select(_ => Task.Run(async () =>
            {
                await go.Task;
                return await gate.StartAsync();
            }))
            .ToArray();

        go.SetResult();
        await recorder.WhenReached(Starting).OrHang();
        startMayReturn.SetResult();

        var results = await Task.WhenAll(callers).OrHang();
        results.Count(started => started).Should().Be(1);
        starts.Should().Be(1);
        gate.State.Should().Be(Running);
        await recorder.WhenSeen(2).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running));
        await gate.StopAsync().OrHang();
    }

    [Fact]
    public async Task StartAfterStop_IsRefusedWithoutAllowRestart_AndRaisesNoEvent()
    {
        // Ports the start-after-TERMINATED rule of Guava's Service.startAsync ("IllegalStateException if the service is not
        // NEW"), asserted in AbstractServiceTest.testStopUnstartedService. The gate refuses a restart unless AllowRestart.
        var starts = 0;
        var gate = NoOpGate(onStart: () => Interlocked.Increment(ref starts));
        var recorder = new TransitionRecorder(gate);
        await gate.StartAsync().OrHang();
        await gate.StopAsync().OrHang();
        await recorder.WhenSeen(4).OrHang();

        await gate.Invoking(g => g.StartAsync()).Should().ThrowAsync<InvalidOperationException>()
            .WithMessage("Gate 'LifecycleGate' has been stopped and does not allow a restart. Set LifecycleGateOptions.AllowRestart to start it again, or create a new gate.");

        gate.State.Should().Be(Stopped);
        starts.Should().Be(1);
        recorder.Events.Should().HaveCount(4);
    }

    [Fact]
    public async Task StartAfterStop_WithAllowRestart_RunsASecondCycle_WhoseEventsFollowTheFirstInOrder()
    {
        // Ports Guava's start-after-TERMINATED rule (Service.startAsync) where the gate differs by option: with
        // AllowRestart a stopped gate starts a new cycle; WhenStopped then refers to that cycle.
        var starts = 0;
        var stops = 0;
        var gate = new LifecycleGate(
            start: (_, _) =>
            {
                Interlocked.Increment(ref starts);
                return Task.CompletedTask;
            },
            run: token => Task.Delay(Timeout.Infinite, token),
            stop: _ =>
            {
                Interlocked.Increment(ref stops);
                return Task.CompletedTask;
            },
            options: new LifecycleGateOptions { AllowRestart = true });
        var recorder = new TransitionRecorder(gate);
        await gate.StartAsync().OrHang();
        await gate.StopAsync().OrHang();
        await gate.WhenStopped.OrHang();

        (await gate.StartAsync().OrHang()).Should().BeTrue();
        gate.WhenStopped.IsCompleted.Should().BeFalse("WhenStopped refers to the running cycle");
        (await gate.StopAsync().OrHang()).Should().BeTrue();

        (starts, stops).Should().Be((2, 2));
        await recorder.WhenSeen(8).OrHang();
        recorder.Transitions.Should().Equal(
            (NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, Stopped),
            (Stopped, Starting), (Starting, Running), (Running, Stopping), (Stopping, Stopped));
    }

    [Fact]
    public async Task StartOnAGateFaultedByItsRun_IsRefusedUntilAStopHasTornItDown()
    {
        // Ports Guava's start-after-FAILED rule of Service.startAsync (IllegalStateException), asserted through
        // AbstractServiceTest.RecordingListener.failed(); the gate's message says what to do instead.
        var fault = new InvalidOperationException("run failed");
        var gate = new LifecycleGate(run: _ => Task.FromException(fault), options: new LifecycleGateOptions { AllowRestart = true });
        var recorder = new TransitionRecorder(gate);
        await gate.StartAsync().OrHang();
        await recorder.WhenReached(RunFaulted).OrHang();

        await gate.Invoking(g => g.StartAsync()).Should().ThrowAsync<InvalidOperationException>()
            .WithMessage("Gate 'LifecycleGate' is RunFaulted with its teardown unfinished. Call StopAsync to finish the teardown before starting again.");
        gate.State.Should().Be(RunFaulted);
    }

    [Fact]
    public async Task AThrowingHandler_IsLoggedAndIsolated_AndTheGateAndTheHandlersAfterItCarryOn()
    {
        // Ports the listener rule behind Guava AbstractServiceTest's RecordingListener (Guava's ListenerCallQueue logs an
        // exception thrown by a listener and goes on): each StateChanged handler is isolated, its exception logged (2008).
        var logger = new RecordingLogger();
        var bug = new InvalidOperationException("handler bug");
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask, options: new LifecycleGateOptions { Logger = logger });
        gate.StateChanged += (_, _) => throw bug;
        var recorder = new TransitionRecorder(gate);

        (await gate.StartAsync().OrHang()).Should().BeTrue();
        (await gate.StopAsync().OrHang()).Should().BeTrue();

        await recorder.WhenSeen(4).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, Stopped));
        var handlerFailures = logger.Entries.Where(e => e.EventId == 2008).ToList();
        handlerFailures.Should().HaveCount(4);
        handlerFailures.Should().OnlyContain(e => ReferenceEquals(e.Exception, bug));
        gate.State.Should().Be(Stopped);
    }

    [Fact]
    public async Task AHandlerStillBusy_DelaysTheLaterEventsButNotTheTransitions_WhichArriveInOrder()
    {
        // Ports the ordering check of Guava AbstractServiceTest.RecordingListener (each callback asserts that its `from`
        // is the state it recorded last), with the first callback held: StopAsync completes while the Running handler is
        // still busy, and Stopping and Stopped follow, in order, once it returns.
        var holdRunning = Bounded.NewGate();
        var runningEntered = Bounded.NewGate();
        var gate = new LifecycleGate(run: token => Task.Delay(Timeout.Infinite, token));
        gate.StateChanged += (_, e) =>
        {
            if (e.Current == Running)
            {
                runningEntered.SetResult();
#pragma warning disable VSTHRD002 // holding the handler is the point of the test
                holdRunning.Task.Wait(Bounded.HangLimit);
#pragma warning restore VSTHRD002
            }
        };
        var recorder = new TransitionRecorder(gate);
        await gate.StartAsync().OrHang();
        await runningEntered.Task.OrHang();

        (await gate.StopAsync().OrHang()).Should().BeTrue();
        gate.State.Should().Be(Stopped);
        recorder.Events.Should().HaveCount(1, "the recorder, after the held handler, has seen only Starting");

        holdRunning.SetResult();
        await recorder.WhenSeen(4).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, Stopped));
    }

    [Fact]
    public async Task StartingHandlers_DoNotHoldUpTheStart_TheStartDelegateRunsWhileTheyWait()
    {
        // Not a Guava port of a test, but of its rule: Guava's AbstractService calls doStart() before it runs the starting()
        // listeners. The gate raises StateChanged on its own work item, after the start delegate was set going, so a
        // Starting handler that waits for the start cannot hold it up.
        var starts = 0;
        var startsSeenAfterWaiting = -1;
        var handlerDone = Bounded.NewGate();
        var gate = NoOpGate(onStart: () => Interlocked.Increment(ref starts));
        gate.StateChanged += (_, e) =>
        {
            if (e.Current == Starting)
            {
#pragma warning disable VSTHRD002 // waiting in the handler is the point of the test
                gate.WhenRunning.Wait(Bounded.HangLimit);
#pragma warning restore VSTHRD002
                startsSeenAfterWaiting = Volatile.Read(ref starts);
                handlerDone.SetResult();
            }
        };

        (await gate.StartAsync().OrHang()).Should().BeTrue();

        await handlerDone.Task.OrHang();
        startsSeenAfterWaiting.Should().Be(1, "the start ran while the Starting handler waited for it");
        await gate.StopAsync().OrHang();
    }

    [Fact]
    public async Task StoppingHandlers_DoNotHoldUpTheTeardown_TheRunIsCancelledWhileTheyWait()
    {
        // Not a Guava port of a test, but of its rule: Guava's stopAsync() calls doStop() (which triggers the shutdown)
        // before it runs the stopping() listeners. The gate's teardown (cancel the run, await it, stop steps) goes on while
        // a Stopping handler runs on its own work item, so one that waits for WhenStopped or StopAsync does not deadlock.
        var stoppingEntered = Bounded.NewGate();
        var releaseHandler = Bounded.NewGate();
        var runToken = Bounded.NewGate<CancellationToken>();
        var stops = 0;
        var gate = new LifecycleGate(
            run: token =>
            {
                runToken.SetResult(token);
                return Task.Delay(Timeout.Infinite, token);
            },
            stop: _ =>
            {
                Interlocked.Increment(ref stops);
                return Task.CompletedTask;
            });
        gate.StateChanged += (_, e) =>
        {
            if (e.Current == Stopping)
            {
                stoppingEntered.SetResult();
#pragma warning disable VSTHRD002 // holding the handler is the point of the test
                releaseHandler.Task.Wait(Bounded.HangLimit);
#pragma warning restore VSTHRD002
            }
        };
        await gate.StartAsync().OrHang();
        var token = await runToken.Task.OrHang();

        var stop = gate.StopAsync();
        await stoppingEntered.Task.OrHang();

        (await stop.OrHang()).Should().BeTrue("the teardown does not wait for the Stopping handler");
        token.IsCancellationRequested.Should().BeTrue();
        stops.Should().Be(1);
        gate.State.Should().Be(Stopped);
        releaseHandler.SetResult();
    }

    private static LifecycleGate NoOpGate(Action? onStart = null, Action? onStop = null) => new(
        start: (_, _) =>
        {
            onStart?.Invoke();
            return Task.CompletedTask;
        },
        stop: _ =>
        {
            onStop?.Invoke();
            return Task.CompletedTask;
        });

    /// <summary>A restartable gate whose first start waits for its token (a stop cancels it) and whose later starts succeed at once.</summary>
    private static async Task<(LifecycleGate Gate, Task WhenStopped, Task<bool> FirstStart)> StartACycleThatAStopWillCancelAsync()
    {
        var first = true;
        var startEntered = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: async (_, token) =>
            {
                if (first)
                {
                    first = false;
                    startEntered.SetResult();
                    await Task.Delay(Timeout.Infinite, token);
                }
            },
            options: new LifecycleGateOptions { AllowRestart = true });
        var whenStopped = gate.WhenStopped;
        var firstStart = gate.StartAsync();
        await startEntered.Task.OrHang();
        return (gate, whenStopped, firstStart);
    }

    /// <summary>Spins until the gate reads Stopped, then restarts it: the restart lands as close to the transition as it can.</summary>
    private static Task<bool> RestartAsSoonAsStoppedAsync(LifecycleGate gate)
    {
        while (gate.State != Stopped)
        {
            // a tight loop: the race needs the restart right behind the transition
        }

        return gate.StartAsync();
    }

    private static async Task FailWhenReleasedAsync(Task release, Exception fault)
    {
        await release;
        throw fault;
    }

    /// <summary>
    /// Guava's ThreadedService: the start and the stop complete on another thread, and each delegate records the state it
    /// sees (Guava asserts STARTING in doStart and STOPPING in doStop); its run waits for its token.
    /// </summary>
    private sealed class ThreadedService
    {
        private readonly ConcurrentQueue<string> _seen = new();
        private readonly TaskCompletionSource _runChecked = Bounded.NewGate();
        private int _stopCalls;

        public ThreadedService()
        {
            Gate = new LifecycleGate(
                start: async (_, _) =>
                {
                    _seen.Enqueue("start: " + Gate!.State);
                    await Task.Run(() => _seen.Enqueue("start, another thread: " + Gate.State));
                },
                run: async token =>
                {
                    _seen.Enqueue("run: " + Gate!.State);
                    _runChecked.SetResult();
                    try
                    {
                        await Task.Delay(Timeout.Infinite, token);
                    }
                    finally
                    {
                        _seen.Enqueue("run returned");
                    }
                },
                stop: async _ =>
                {
                    Interlocked.Increment(ref _stopCalls);
                    _seen.Enqueue("stop: " + Gate!.State);
                    await Task.Run(() => _seen.Enqueue("stop, another thread: " + Gate.State));
                });
        }

        public LifecycleGate Gate { get; }

        public Task RunChecked => _runChecked.Task;

        public string[] Seen => _seen.ToArray();

        public int StopCalls => Volatile.Read(ref _stopCalls);
    }
}
