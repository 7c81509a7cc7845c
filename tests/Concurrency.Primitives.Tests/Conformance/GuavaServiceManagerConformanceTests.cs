using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using static Concurrency.Primitives.LifecycleState;

namespace Concurrency.Primitives.Tests.Conformance;

// Guava's ServiceManagerTest (guava-tests/test/com/google/common/util/concurrent/ServiceManagerTest.java) ported to
// LifecycleGroup.
//
// Mapping: a ServiceManager over services is a group over gates added without dependencies (ServiceManager cannot order
// its services; such gates start concurrently and stop concurrently, as ServiceManager's do). startAsync/awaitHealthy
// are StartAsync/WhenRunning, stopAsync/awaitStopped are StopAsync/WhenStopped, isHealthy is State == Running. The
// Listener is the group's StateChanged (a TransitionRecorder): healthy() is the transition to Running, stopped() the one
// to Stopped; failure(service) is GateFaulted for a gate whose run faults, the group's StartFailed transition (with the
// gate's exception, also logged as 2013 naming the gate) for a gate whose start fails, and the group's StopFailed
// transition (logged as 2014 naming the gate) for a gate whose stop fails. servicesByState is each gate's State;
// toString's list of services is GateNames. NoOpService is a ScriptedGate, FailStartService one with a StartFailure,
// FailRunService one whose run is faulted by the test, FailStopService a gate whose stop delegate throws; the delays of
// NoOpDelayedService are gates the test holds and releases, and its milliseconds pass on a ManualTimeProvider.
//
// Ported (upstream test -> test here):
//   testServiceStartStop                      -> StartThenStop_StartsEveryGateAtOnce_RunsThemAll_ThenStopsThemAll_...
//   testFailStart                             -> GatesThatFailToStart_FailTheGroupsStart_...
//     DIFFERENCE BY DESIGN: ServiceManager leaves the services that started RUNNING until stopAsync; a failed group start
//     stops them at once (a, c, e end Stopped) and throws the first failing gate's own exception. The failures are not
//     GateFaulted events (that is for runs): the group's StartFailed transition carries the exception and the log names
//     the gate. After a failed start there is nothing to stop (StopAsync reports false) and no Stopped transition;
//     WhenStopped completes once the group is closed.
//   testFailRun                               -> AGateWhoseRunFaultsWhileTheGroupRuns_IsReportedAsFaulted_... (both policies)
//     DIFFERENCE BY DESIGN: ServiceManager leaves the failed service FAILED and the others running until stopAsync, which
//     is OnGateFault = Isolate; the default, StopGroup, stops every gate itself. Either way the faulted gate's teardown is
//     finished by the stop, so it ends Stopped, not FAILED.
//   testFailStop                              -> AGateThatFailsToStop_FailsTheGroupsStop_WhileTheOthersStop_...
//     DIFFERENCE BY DESIGN: ServiceManager's stop ends with the service FAILED and calls stopped(); the group's stop
//     throws the gate's exception, the group is StopFailed (no Stopped transition) and a second stop resumes the gate.
//   testToString                              -> GateNames_ListTheGatesInTheOrderTheyWereAdded (no ToString contract)
//   testTimeouts                              -> ACallersWaitThatEnds_EndsOnlyThatWait_...
//                                              and TheGroupsStopBound_NamesTheGateStillStopping_...
//     DIFFERENCE BY DESIGN: awaitHealthy/awaitStopped take a timeout and throw TimeoutException; StartAsync and StopAsync
//     take the caller's token (here a CancellationTokenSource timed on the manual clock) and throw
//     OperationCanceledException; the bound on the stop itself is LifecycleGroupOptions.ShutdownTimeout, whose
//     LifecycleGroupStopTimeoutException names the gates not stopped (as the TimeoutException of awaitStopped does).
//   testSingleFailedServiceCallsStopped       -> AGroupWhoseOnlyGateFailsToStart_EndsStartFailed_...
//     DIFFERENCE BY DESIGN: the transition that ends a failed start is StartFailed, not Stopped (see testFailStart).
//   testFailStart_singleServiceCallsHealthy   -> AGroupWhoseOnlyGateFailsToStart_NeverReachesRunning_...
//   testFailStart_stopOthers                  -> AStopRequestedByAFailureHandlerDuringTheStart_Completes_...
//   testDoCancelStart                         -> AStopDuringAGatesStart_CancelsIt_WithoutCallingItsStop_...
//     DIFFERENCE BY DESIGN: doCancelStart sees the service STOPPING; a gate whose start is cancelled stays Starting until
//     its start returns and then goes straight to Stopped (no Stopping: there was nothing to tear down).
//   testNotifyStoppedAfterFailure             -> AStopAfterAFailedStart_IsANoOp_...
//   testEmptyServiceManager                   -> AnEmptyGroup_StartsAndStops_RaisingRunningThenStopped_...
//   testListenerDeadlock                      -> AFaultHandlerThatBlocks_DoesNotHoldUpAStop_...
//     DIFFERENCE BY DESIGN: ServiceManager is no longer healthy when failure() runs; GateFaulted handlers run before the
//     group acts on the fault, so the group is still Running then (the faulted gate is already RunFaulted).
//   testPartiallyConstructedManager (and the constructor's refusal of duplicate services)
//                                             -> AGateThatCannotJoin_IsRefusedAtAdd_...
//   testTransitionRace                        -> ManyStartsAndStops_OfGatesWhoseRunsReturnAtOnce_...
//   testNulls                                 -> NullArguments_AreRefused_NamingTheParameter_...
//   testServiceStartupTimes, testServiceStartupDurations
//                                             -> EachGate_RecordsHowLongItsStopTook_OnItsClock
//     DIFFERENCE BY DESIGN: there is no startupTimes/startupDurations; the timing a gate records is its stop's duration
//     (concurrency.primitives.gate.stop.duration, seconds, tagged gate.name, on the gate's TimeProvider).
//
// Skipped:
//   testServiceStartupTimes_selfStartingServices: a service started by another before the manager starts it; a group's
//     gates are started by the group only (the group's contract: do not start or stop them yourself), and no start time
//     is recorded.
//   testPartiallyConstructedManager's refusal of a service that is not NEW: Add does not look at a gate's state, and no
//     behaviour is documented for a gate started before it was added.
//   testPartiallyConstructedManager_transitionAfterAddListenerBeforeStateIsReady: needs a user-written Service that
//     misbehaves when a listener is added; a group's members are LifecycleGate and LifecycleGroup only.
//   testNulls' Listener and Executor arguments: handlers are .NET events, with no executor.
public sealed class GuavaServiceManagerConformanceTests
{
    private readonly ConcurrentQueue<string> _journal = new();

    [Fact]
    public async Task StartThenStop_StartsEveryGateAtOnce_RunsThemAll_ThenStopsThemAll_RaisingRunningThenStopped()
    {
        // Ports Guava ServiceManagerTest.testServiceStartStop
        var a = Gate("a");
        var b = Gate("b");
        a.HoldStart = b.StartEntered.Task; // each returns only once the other has begun: both start at once
        b.HoldStart = a.StartEntered.Task;
        var group = Group(a, b);
        var listener = new TransitionRecorder(group);
        States(a, b).Should().Equal(NotStarted, NotStarted);
        group.State.Should().NotBe(Running);

        (await group.StartAsync().OrHang()).Should().BeTrue();

        States(a, b).Should().Equal(Running, Running);
        group.State.Should().Be(Running);
        await listener.WhenReached(Running).OrHang();
        listener.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running));

        (await group.StopAsync().OrHang()).Should().BeTrue();

        States(a, b).Should().Equal(Stopped, Stopped);
        group.State.Should().Be(Stopped);
        await listener.WhenReached(Stopped).OrHang();
        listener.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, Stopped));
        listener.Events.Should().OnlyContain(e => e.Exception == null, "no gate failed");
    }

    [Fact]
    public async Task GatesThatFailToStart_FailTheGroupsStart_WithTheFirstFailure_AndTheGatesThatStartedAreStoppedAtOnce()
    {
        // Ports Guava ServiceManagerTest.testFailStart
        var logger = new RecordingLogger();
        var bFailure = new InvalidOperationException("b: start failure");
        var dFailure = new InvalidOperationException("d: start failure");
        var (a, b, c, d, e) = (Gate("a"), FailingToStart("b", bFailure), Gate("c"), FailingToStart("d", dFailure), Gate("e"));
        var group = Group(logger, a, b, c, d, e);
        var listener = new TransitionRecorder(group);
        States(a, b, c, d, e).Should().OnlyContain(state => state == NotStarted);

        var thrown = (await group.Awaiting(g => g.StartAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which;

        thrown.Should().BeOneOf(bFailure, dFailure);
        var firstFailed = ReferenceEquals(thrown, bFailure) ? "b" : "d";
        group.State.Should().Be(StartFailed);
        group.Fault.Should().BeSameAs(thrown);
        (await listener.WhenReached(StartFailed).OrHang()).Exception.Should().BeSameAs(thrown);
        listener.Transitions.Should().Equal((NotStarted, Starting), (Starting, StartFailed)); // never healthy
        (b.Gate.State, b.Gate.Fault).Should().Be((StartFailed, bFailure));
        (d.Gate.State, d.Gate.Fault).Should().Be((StartFailed, dFailure));
        States(a, c, e).Should().Equal(Stopped, Stopped, Stopped);
        Entries("stop:").Should().BeEquivalentTo(new[] { "a", "c", "e" }, "the stop of a gate whose start failed never runs");
        logger.Entries.Should().ContainSingle(entry => entry.EventId == 2013).Which["Gate"].Should().Be(firstFailed);

        (await group.StopAsync().OrHang()).Should().BeFalse("the failed start left nothing to stop");
        group.WhenStopped.IsCompleted.Should().BeFalse("a failed start is not a stop");
        await group.CloseAsync().OrHang();
        await group.WhenStopped.OrHang();
        group.State.Should().Be(StartFailed);
        listener.Transitions.Should().HaveCount(2, "closing a group whose start failed changes no state");
    }

    [Theory]
    [InlineData(LifecycleGroupFaultPolicy.StopGroup)]
    [InlineData(LifecycleGroupFaultPolicy.Isolate)]
    public async Task AGateWhoseRunFaultsWhileTheGroupRuns_IsReportedAsFaulted_ThenStoppedWithTheOthers(LifecycleGroupFaultPolicy policy)
    {
        // Ports Guava ServiceManagerTest.testFailRun
        var a = Gate("a");
        var b = Gate("b");
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "manager", OnGateFault = policy });
        group.Add(a.Gate);
        group.Add(b.Gate);
        var listener = new TransitionRecorder(group);
        var failed = new ConcurrentQueue<string>();
        var reported = Bounded.NewGate<LifecycleGateFaultedEventArgs>();
        group.GateFaulted += (_, e) =>
        {
            failed.Enqueue(e.GateName);
            reported.TrySetResult(e);
        };
        await group.StartAsync().OrHang();
        await listener.WhenReached(Running).OrHang(); // healthy

        var fault = new InvalidOperationException("run failure");
        b.FaultRun(fault);

        var report = await reported.Task.OrHang();
        (report.Exception, report.Policy).Should().Be((fault, policy));
        if (policy == LifecycleGroupFaultPolicy.StopGroup)
        {
            await group.WhenStopped.OrHang();
            await listener.WhenReached(Stopped).OrHang();
            listener.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, RunFaulted), (RunFaulted, Stopping), (Stopping, Stopped));
            listener.Events[2].Exception.Should().BeSameAs(fault);
            (await group.StopAsync().OrHang()).Should().BeFalse("the group stopped itself");
        }
        else
        {
            group.State.Should().Be(Running);
            States(a, b).Should().Equal(Running, RunFaulted);
            Entries("stop:").Should().BeEmpty();

            (await group.StopAsync().OrHang()).Should().BeTrue();
            await listener.WhenReached(Stopped).OrHang();
            listener.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, Stopped));
        }

        failed.Should().Equal("b");
        States(a, b).Should().Equal(Stopped, Stopped);
        Entries("stop:").Should().BeEquivalentTo(new[] { "a", "b" });
    }

    [Fact]
    public async Task AGateThatFailsToStop_FailsTheGroupsStop_WhileTheOthersStop_AndASecondStopResumesIt()
    {
        // Ports Guava ServiceManagerTest.testFailStop
        var logger = new RecordingLogger();
        var failure = new InvalidOperationException("stop failure");
        var attempts = 0;
        var a = Gate("a");
        var b = new LifecycleGate(
            stop: _ => Interlocked.Increment(ref attempts) == 1 ? throw failure : Task.CompletedTask,
            options: new LifecycleGateOptions { Name = "b" });
        var c = Gate("c");
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "manager", Logger = logger });
        group.Add(a.Gate);
        group.Add(b);
        group.Add(c.Gate);
        var listener = new TransitionRecorder(group);
        var faulted = new ConcurrentQueue<string>();
        group.GateFaulted += (_, e) => faulted.Enqueue(e.GateName);
        await group.StartAsync().OrHang();
        await listener.WhenReached(Running).OrHang();

        (await group.Awaiting(g => g.StopAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(failure);

        (group.State, group.Fault).Should().Be((StopFailed, failure));
        (b.State, b.Fault).Should().Be((StopFailed, failure));
        States(a, c).Should().Equal(Stopped, Stopped);
        var logged = logger.Entries.Should().ContainSingle(entry => entry.EventId == 2014).Which;
        (logged["Gate"], logged.Exception).Should().Be(("b", failure));
        await listener.WhenReached(StopFailed).OrHang();
        listener.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, StopFailed));
        faulted.Should().BeEmpty("a stop failure is not a run fault");

        (await group.StopAsync().OrHang()).Should().BeTrue();
        (group.State, b.State, attempts).Should().Be((Stopped, Stopped, 2));
    }

    [Fact]
    public void GateNames_ListTheGatesInTheOrderTheyWereAdded()
    {
        // Ports Guava ServiceManagerTest.testToString
        var group = Group(Gate("NoOpService"), FailingToStart("FailStartService", new InvalidOperationException("start failure")));

        group.GateNames.Should().Equal("NoOpService", "FailStartService");
    }

    [Fact]
    public async Task ACallersWaitThatEnds_EndsOnlyThatWait_TheStartAndTheStopGoOn_AndALaterWaitSeesThemFinish()
    {
        // Ports Guava ServiceManagerTest.testTimeouts (awaitHealthy and awaitStopped with a timeout)
        var clock = new ManualTimeProvider();
        var startMayReturn = Bounded.NewGate();
        var stopMayReturn = Bounded.NewGate();
        var a = Gate("a");
        a.HoldStart = startMayReturn.Task;
        a.HoldStop = stopMayReturn.Task;
        var group = Group(a);

        await ExpectTheWaitToEndAfterOneMillisecond(clock, group.StartAsync, a.StartEntered.Task);

        (group.State, a.Gate.State).Should().Be((Starting, Starting));
        startMayReturn.SetResult();
        await group.WhenRunning.OrHang();
        group.State.Should().Be(Running);

        await ExpectTheWaitToEndAfterOneMillisecond(clock, group.StopAsync, a.StopEntered.Task);

        (group.State, a.Gate.State).Should().Be((Stopping, Stopping));
        stopMayReturn.SetResult();
        await group.WhenStopped.OrHang();
        (group.State, a.Gate.State).Should().Be((Stopped, Stopped));
    }

    [Fact]
    public async Task TheGroupsStopBound_NamesTheGateStillStopping_AndAStopAfterItFinishesTheStop()
    {
        // Ports Guava ServiceManagerTest.testTimeouts (awaitStopped's TimeoutException names the services not stopped)
        var clock = new ManualTimeProvider();
        var release = Bounded.NewGate();
        var a = Gate("a");
        a.HoldStop = release.Task;
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "manager", ShutdownTimeout = TimeSpan.FromMilliseconds(1), TimeProvider = clock });
        group.Add(a.Gate);
        await group.StartAsync().OrHang();

        var stop = group.StopAsync();
        await a.StopEntered.Task.OrHang();
        await clock.WhenTimersArmed(1).OrHang();
        clock.Advance(TimeSpan.FromMilliseconds(1));

        var timeout = (await stop.Awaiting(s => s.OrHang()).Should().ThrowAsync<LifecycleGroupStopTimeoutException>()).Which;
        timeout.StillStopping.Should().BeEquivalentTo(new Dictionary<string, string> { ["a"] = "stop" });
        timeout.NotYetStopped.Should().BeEmpty();
        timeout.Message.Should().Contain("1 gate(s) still stopping: 'a' (waiting for 'stop')");
        (group.State, a.Gate.State).Should().Be((StopFailed, Stopping));

        release.SetResult();
        (await group.StopAsync().OrHang()).Should().BeTrue();
        (group.State, a.Gate.State).Should().Be((Stopped, Stopped));
    }

    [Fact]
    public async Task AGroupWhoseOnlyGateFailsToStart_EndsStartFailed_WithThatFailure_AndIsStoppedOnceClosed()
    {
        // Ports Guava ServiceManagerTest.testSingleFailedServiceCallsStopped
        var failure = new InvalidOperationException("start failure");
        var a = FailingToStart("a", failure);
        var group = Group(a);
        var listener = new TransitionRecorder(group);

        (await group.Awaiting(g => g.StartAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(failure);

        (await listener.WhenReached(StartFailed).OrHang()).Exception.Should().BeSameAs(failure);
        group.WhenStopped.IsCompleted.Should().BeFalse("the group may still be started again");
        await group.CloseAsync().OrHang();
        await group.WhenStopped.OrHang();
        a.Gate.State.Should().Be(StartFailed);
    }

    [Fact]
    public async Task AGroupWhoseOnlyGateFailsToStart_NeverReachesRunning_AndWhenRunningFaultsWithTheGatesFailure()
    {
        // Ports Guava ServiceManagerTest.testFailStart_singleServiceCallsHealthy
        var failure = new InvalidOperationException("start failure");
        var a = FailingToStart("a", failure);
        var group = Group(a);
        var listener = new TransitionRecorder(group);
        var whenRunning = group.WhenRunning;

        await group.Awaiting(g => g.StartAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>();

        await listener.WhenReached(StartFailed).OrHang();
        listener.Transitions.Should().Equal((NotStarted, Starting), (Starting, StartFailed));
        (await whenRunning.Awaiting(w => w.OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(failure);
    }

    [Fact]
    public async Task AStopRequestedByAFailureHandlerDuringTheStart_Completes_AndLeavesNoGateRunning()
    {
        // Ports Guava ServiceManagerTest.testFailStart_stopOthers
        var failure = new InvalidOperationException("start failure");
        var a = FailingToStart("a", failure);
        var b = Gate("b");
        var group = Group(a, b);
        var stopFromHandler = Bounded.NewGate<Task<bool>>();
        a.Gate.StateChanged += (_, e) =>
        {
            if (e.Current == StartFailed)
            {
                stopFromHandler.TrySetResult(group.StopAsync());
            }
        };

        var start = group.StartAsync();
        var stopped = await (await stopFromHandler.Task.OrHang()).OrHang();

        // The handler's stop races the group's own rollback: it either cancels the start (the group is Stopped and its
        // start throws OperationCanceledException) or comes after the failure (the group is StartFailed with the
        // gate's exception, and the stop had nothing to do). Either way nothing hangs and nothing is left running.
        if (stopped)
        {
            group.State.Should().Be(Stopped);
            await start.Awaiting(s => s.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        }
        else
        {
            group.State.Should().Be(StartFailed);
            (await start.Awaiting(s => s.OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(failure);
        }

        States(a, b).Should().Equal(StartFailed, Stopped);
    }

    [Fact]
    public async Task AStopDuringAGatesStart_CancelsIt_WithoutCallingItsStop_AndTheGateGoesStraightToStopped()
    {
        // Ports Guava ServiceManagerTest.testDoCancelStart
        var never = Bounded.NewGate();
        var a = Gate("a");
        a.HoldStart = never.Task; // never starts on its own: returns only when its start is cancelled
        var group = Group(a);
        var gateEvents = new TransitionRecorder(a.Gate);
        var start = group.StartAsync();
        await a.StartEntered.Task.OrHang();
        a.Gate.State.Should().Be(Starting);

        (await group.StopAsync().OrHang()).Should().BeTrue();

        await start.Awaiting(s => s.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        (group.State, a.Gate.State).Should().Be((Stopped, Stopped));
        _journal.Should().Equal("start:a"); // its stop never ran
        await gateEvents.WhenReached(Stopped).OrHang();
        gateEvents.Transitions.Should().Equal((NotStarted, Starting), (Starting, Stopped));
    }

    [Fact]
    public async Task AStopAfterAFailedStart_IsANoOp_AndTheGateKeepsItsFailure()
    {
        // Ports Guava ServiceManagerTest.testNotifyStoppedAfterFailure
        var failure = new InvalidOperationException("start failure");
        var a = FailingToStart("a", failure);
        var group = Group(a);
        await group.Awaiting(g => g.StartAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>();

        (await group.StopAsync().OrHang()).Should().BeFalse();

        (group.State, a.Gate.State, a.Gate.Fault).Should().Be((StartFailed, StartFailed, failure));
        _journal.Should().Equal("start:a");
    }

    [Fact]
    public async Task AnEmptyGroup_StartsAndStops_RaisingRunningThenStopped_AndHoldsAndLogsNoGate()
    {
        // Ports Guava ServiceManagerTest.testEmptyServiceManager
        var logger = new RecordingLogger();
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "manager", Logger = logger });
        var listener = new TransitionRecorder(group);

        (await group.StartAsync().OrHang()).Should().BeTrue();

        group.State.Should().Be(Running);
        await listener.WhenReached(Running).OrHang();
        listener.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running));

        (await group.StopAsync().OrHang()).Should().BeTrue();

        group.State.Should().Be(Stopped);
        await listener.WhenReached(Stopped).OrHang();
        listener.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, Stopped));
        listener.Events.Should().OnlyContain(e => e.Exception == null);
        group.GateNames.Should().BeEmpty();
        logger.Entries.Should().HaveCount(4).And.OnlyContain(entry => entry.EventId == 2001 && (string?)entry["Gate"] == "manager");
    }

    [Fact]
    public async Task AFaultHandlerThatBlocks_DoesNotHoldUpAStop_AndTheFaultReportedLateStopsNothingMore()
    {
        // Ports Guava ServiceManagerTest.testListenerDeadlock
        var release = Bounded.NewGate();
        var entered = Bounded.NewGate<(LifecycleState Group, LifecycleState Gate)>();
        var failing = Gate("failing");
        var other = Gate("other");
        var group = Group(failing, other);
        group.GateFaulted += (_, _) =>
        {
            entered.TrySetResult((group.State, failing.Gate.State));
#pragma warning disable VSTHRD002 // a handler that blocks its work item is the scenario
            release.Task.Wait(Bounded.HangLimit);
#pragma warning restore VSTHRD002
        };
        var failingStopSeen = Bounded.NewGate();
        failing.Gate.StateChanged += (_, e) =>
        {
            if (e.Current == Stopped)
            {
                failingStopSeen.TrySetResult(); // raised after the group's handling of the fault has returned
            }
        };
        await group.StartAsync().OrHang();

        failing.FaultRun(new InvalidOperationException("boom"));

        var seen = await entered.Task.OrHang();
        seen.Gate.Should().Be(RunFaulted, "the gate's state is updated before the fault is reported");
        seen.Group.Should().Be(Running, "the group acts on a fault after its handlers");
        (await group.StopAsync().OrHang()).Should().BeTrue();
        (group.State, failing.Gate.State, other.Gate.State).Should().Be((Stopped, Stopped, Stopped));

        release.SetResult();
        await failingStopSeen.Task.OrHang();
        group.State.Should().Be(Stopped);
    }

    [Fact]
    public async Task AGateThatCannotJoin_IsRefusedAtAdd_WithNothingLogged_AndTheGroupStartsWithWhatItHolds()
    {
        // Ports Guava ServiceManagerTest.testPartiallyConstructedManager, and ServiceManager's refusal of duplicate services
        var logger = new RecordingLogger();
        var held = Gate("held");
        new LifecycleGroup(new LifecycleGroupOptions { Name = "other" }).Add(held.Gate);
        var a = Gate("a");
        var group = Group(logger, a);

        group.Invoking(g => g.Add(held.Gate)).Should().Throw<InvalidOperationException>().WithMessage("*'held' already belongs to group 'other'*");
        group.Invoking(g => g.Add(a.Gate)).Should().Throw<ArgumentException>().WithMessage("*already holds a gate named 'a'*");
        group.Invoking(g => g.Add(Gate("a").Gate)).Should().Throw<ArgumentException>().WithMessage("*already holds a gate named 'a'*");

        logger.Entries.Should().BeEmpty();
        group.GateNames.Should().Equal("a");
        (await group.StartAsync().OrHang()).Should().BeTrue();
        (a.Gate.State, held.Gate.State).Should().Be((Running, NotStarted));
        _journal.Should().Equal("start:a", "running:a");
    }

    [Fact]
    public async Task ManyStartsAndStops_OfGatesWhoseRunsReturnAtOnce_EachGateRaisesItsTransitionsInOrder()
    {
        // Ports Guava ServiceManagerTest.testTransitionRace
        for (var round = 0; round < 1000; round++)
        {
            var gates = Enumerable.Range(0, 5).Select(i => Gate("SnappyShutdownService[" + i + "]")).ToArray();
            var group = Group(gates);
            var groupEvents = new TransitionRecorder(group);
            var gateEvents = gates.Select(gate => new TransitionRecorder(gate.Gate)).ToArray();

            (await group.StartAsync().OrHang()).Should().BeTrue();
            (await group.StopAsync().OrHang()).Should().BeTrue();

            await groupEvents.WhenReached(Stopped).OrHang();
            groupEvents.Transitions.Should().Equal(new[] { (NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, Stopped) }, "round {0}", round);
            foreach (var events in gateEvents)
            {
                await events.WhenReached(Stopped).OrHang();
                events.Transitions.Should().Equal(new[] { (NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, Stopped) }, "round {0}", round);
            }
        }
    }

    [Fact]
    public void NullArguments_AreRefused_NamingTheParameter_AndLeaveTheGroupEmpty()
    {
        // Ports Guava ServiceManagerTest.testNulls
        var group = new LifecycleGroup();
        var gate = new LifecycleGate(options: new LifecycleGateOptions { Name = "a" });
        var nested = new LifecycleGroup(new LifecycleGroupOptions { Name = "b" });

        group.Invoking(g => g.Add((LifecycleGate)null!)).Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("gate");
        group.Invoking(g => g.Add((LifecycleGroup)null!)).Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("group");
        group.Invoking(g => g.Add(gate, null!)).Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("dependsOn");
        group.Invoking(g => g.Add(nested, null!)).Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("dependsOn");
        group.Invoking(g => g.Add(gate, new string[] { null! })).Should().Throw<ArgumentException>().Which.ParamName.Should().Be("dependsOn");
        FluentActions.Invoking(() => new LifecycleGateFaultedEventArgs(null!, new InvalidOperationException(), LifecycleGroupFaultPolicy.StopGroup))
            .Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("gateName");
        FluentActions.Invoking(() => new LifecycleGateFaultedEventArgs("a", null!, LifecycleGroupFaultPolicy.StopGroup))
            .Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("exception");

        group.GateNames.Should().BeEmpty();
        new LifecycleGroup().Invoking(g => g.Add(gate)).Should().NotThrow("the refused calls left the gate free to join a group");
    }

    [Fact]
    public async Task EachGate_RecordsHowLongItsStopTook_OnItsClock()
    {
        // Ports Guava ServiceManagerTest.testServiceStartupTimes and testServiceStartupDurations
        var id = Guid.NewGuid().ToString("N");
        using var durations = new MetricCollector<double>(meterScope: null, ConcurrencyPrimitivesTelemetry.MeterName, "concurrency.primitives.gate.stop.duration");
        var clock = new ManualTimeProvider();
        var releaseA = Bounded.NewGate();
        var releaseB = Bounded.NewGate();
        var a = Gate("a-" + id, new LifecycleGateOptions { TimeProvider = clock });
        var b = Gate("b-" + id, new LifecycleGateOptions { TimeProvider = clock });
        a.HoldStop = releaseA.Task;
        b.HoldStop = releaseB.Task;
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "manager" });
        group.Add(a.Gate);
        group.Add(b.Gate, a.Gate.Name); // b stops first; a's stop begins once b's has ended and been recorded
        await group.StartAsync().OrHang();

        var stop = group.StopAsync();
        await b.StopEntered.Task.OrHang();
        clock.Advance(TimeSpan.FromMilliseconds(353));
        releaseB.SetResult();
        await a.StopEntered.Task.OrHang();
        clock.Advance(TimeSpan.FromMilliseconds(150));
        releaseA.SetResult();
        (await stop.OrHang()).Should().BeTrue();

        StopSeconds(a).Should().ContainSingle().Which.Should().BeApproximately(0.150, 1e-9);
        StopSeconds(b).Should().ContainSingle().Which.Should().BeApproximately(0.353, 1e-9);

        double[] StopSeconds(ScriptedGate gate) => durations.GetMeasurementSnapshot()
            .Where(m => (string?)m.Tags["gate.name"] == gate.Gate.Name)
            .Select(m => m.Value)
            .ToArray();
    }

    /// <summary>
    /// Calls <paramref name="call"/> with a token cancelled one millisecond later on <paramref name="clock"/> (Guava's
    /// 1 ms timeout), lets the millisecond pass once <paramref name="entered"/> completes, and expects the call's wait to end.
    /// </summary>
    private static async Task ExpectTheWaitToEndAfterOneMillisecond(ManualTimeProvider clock, Func<CancellationToken, Task<bool>> call, Task entered)
    {
        using var wait = new CancellationTokenSource(TimeSpan.FromMilliseconds(1), clock);
        var pending = call(wait.Token);
        await entered.OrHang();
        clock.Advance(TimeSpan.FromMilliseconds(1));
        await pending.Awaiting(p => p.OrHang()).Should().ThrowAsync<OperationCanceledException>();
    }

    private static LifecycleState[] States(params ScriptedGate[] gates) => gates.Select(gate => gate.Gate.State).ToArray();

    private static LifecycleGroup Group(params ScriptedGate[] gates) => Group(logger: null, gates);

    /// <summary>A group named "manager" holding <paramref name="gates"/> without dependencies: a ServiceManager's set.</summary>
    private static LifecycleGroup Group(RecordingLogger? logger, params ScriptedGate[] gates)
    {
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "manager", Logger = logger });
        foreach (var gate in gates)
        {
            group.Add(gate.Gate);
        }

        return group;
    }

    private ScriptedGate Gate(string name, LifecycleGateOptions? options = null) => new(name, _journal, options);

    private ScriptedGate FailingToStart(string name, Exception failure) => new(name, _journal) { StartFailure = failure };

    private List<string> Entries(string prefix) =>
        _journal.Where(entry => entry.StartsWith(prefix, StringComparison.Ordinal)).Select(entry => entry[prefix.Length..]).ToList();
}
