using System;
using System.Collections.Concurrent;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.Lifecycle;

/// <summary>
/// LifecycleGroup's plan (the dependency check), its start pass (which gate fails it, and when) and its stop pass (what
/// stays running, and what a stop that runs out of time says about each gate).
/// </summary>
public sealed class LifecycleGroupPlanAndPassTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);
    private readonly ConcurrentQueue<string> _journal = new();

    [Fact]
    public async Task AClosedGroup_RefusesItsStartAsClosed_WhateverItsDependencies()
    {
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node" });
        group.Add(Gate("sync").Gate, "db"); // db was never added
        await group.CloseAsync().OrHang();

        await group.Awaiting(g => g.StartAsync()).Should().ThrowAsync<ClosedException>();

        _journal.Should().BeEmpty();
    }

    [Fact]
    public async Task ACycleFoundPastAGateAlreadyPlaced_NamesOnlyTheGatesInTheCycle()
    {
        var group = new LifecycleGroup();
        group.Add(Gate("a").Gate, "c", "b"); // c is placed first (it depends on nothing), then b leads back to a
        group.Add(Gate("b").Gate, "a");
        group.Add(Gate("c").Gate);

        var refused = (await group.Awaiting(g => g.StartAsync()).Should().ThrowAsync<LifecycleDependencyException>()).Which;

        refused.Cycle.Should().Equal("a", "b", "a");
    }

    [Fact]
    public async Task GatesStoppedDirectlyDuringTheGroupsStart_FailIt_NamingTheFirstOfThemInTheGroupsOrder()
    {
        var logger = new RecordingLogger();
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node", Logger = logger });
        var release = Bounded.NewGate();
        var a = Gate("a");
        var b = Gate("b");
        var c = Gate("c");
        b.HoldStart = release.Task;
        group.Add(a.Gate);
        group.Add(b.Gate);
        group.Add(c.Gate);
        var start = group.StartAsync();
        await Task.WhenAll(a.Gate.WhenRunning, c.Gate.WhenRunning).OrHang();

        await a.Gate.StopAsync().OrHang(); // what a group's gate must not be: stopped behind the group's back
        await c.Gate.StopAsync().OrHang();
        release.SetResult();

        await start.Awaiting(s => s.OrHang()).Should().ThrowAsync<InvalidOperationException>()
            .WithMessage("Group 'node': gate 'a' is Stopped, not Running, so the group cannot start. Do not stop a group's gates directly.");
        logger.Entries.Should().ContainSingle(e => e.EventId == 2013).Which["Gate"].Should().Be("a");
        group.State.Should().Be(LifecycleState.StartFailed);
        b.Gate.State.Should().Be(LifecycleState.Stopped, "the failed start stopped what it had started");
    }

    [Fact]
    public async Task AGateWhoseRunFaultsDuringTheGroupsStart_FailsTheStart_WithThatGatesOwnFault()
    {
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node" });
        var release = Bounded.NewGate();
        var db = Gate("db");
        var rpc = Gate("rpc");
        rpc.HoldStart = release.Task;
        group.Add(db.Gate);
        group.Add(rpc.Gate);
        var faulted = Bounded.NewGate();
        db.Gate.StateChanged += (_, change) =>
        {
            if (change.Current == LifecycleState.RunFaulted)
            {
                faulted.TrySetResult();
            }
        };
        var start = group.StartAsync();
        await db.Gate.WhenRunning.OrHang();

        var fault = new IOException("disk gone");
        db.FaultRun(fault);
        await faulted.Task.OrHang();
        release.SetResult();

        (await start.Awaiting(s => s.OrHang()).Should().ThrowAsync<IOException>()).Which.Should().BeSameAs(fault);
        group.State.Should().Be(LifecycleState.StartFailed);
    }

    [Fact]
    public async Task ADependencyStoppedBeforeItsDependentCouldStart_FailsTheGroupsStart_AndTheDependentNeverStarts()
    {
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node" });
        var release = Bounded.NewGate();
        var db = Gate("db");
        var cache = Gate("cache");
        cache.HoldStart = release.Task;
        group.Add(db.Gate);
        group.Add(cache.Gate);
        group.Add(Gate("sync").Gate, "db", "cache");
        var start = group.StartAsync();
        await db.Gate.WhenRunning.OrHang();

        await db.Gate.StopAsync().OrHang();
        release.SetResult(); // cache is up: sync's dependencies have all started, but db no longer runs

        await start.Awaiting(s => s.OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("*gate 'db' is Stopped, not Running*");
        _journal.Should().NotContain("start:sync");
        group.State.Should().Be(LifecycleState.StartFailed);
    }

    [Fact]
    public async Task AGateThatFailsToStart_FailsTheGroupAtOnce_CancellingTheGateStillStarting()
    {
        var failure = new IOException("replication refused");
        var never = Bounded.NewGate();
        var cache = Gate("cache");
        cache.HoldStart = never.Task; // returns only when its start is cancelled
        var replication = Gate("replication");
        replication.StartFailure = failure;
        var group = new LifecycleGroup();
        group.Add(Gate("db").Gate);
        group.Add(cache.Gate, "db");
        group.Add(replication.Gate, "db");

        (await group.Awaiting(g => g.StartAsync().OrHang()).Should().ThrowAsync<IOException>()).Which.Should().BeSameAs(failure);

        cache.Gate.State.Should().Be(LifecycleState.Stopped, "its start was cancelled by the group's rollback");
        group.State.Should().Be(LifecycleState.StartFailed);
    }

    [Fact]
    public async Task AGateThatFailsToStop_KeepsEveryGateBelowItRunning_NotOnlyThoseItDependsOnDirectly()
    {
        var attempts = 0;
        var rpc = new LifecycleGate(stop: _ => ++attempts == 1 ? throw new IOException("drain failed") : Task.CompletedTask, options: new LifecycleGateOptions { Name = "rpc" });
        var sync = Gate("sync");
        var db = Gate("db");
        var group = new LifecycleGroup();
        group.Add(db.Gate);
        group.Add(sync.Gate, "db");
        group.Add(rpc, "sync");
        await group.StartAsync().OrHang();

        await group.Awaiting(g => g.StopAsync().OrHang()).Should().ThrowAsync<IOException>();

        (sync.Gate.State, db.Gate.State).Should().Be((LifecycleState.Running, LifecycleState.Running));
        _journal.Should().NotContain(e => e.StartsWith("stop:", StringComparison.Ordinal));
        (await group.StopAsync().OrHang()).Should().BeTrue();
        _journal.Where(e => e.StartsWith("stop:", StringComparison.Ordinal)).Should().Equal("stop:sync", "stop:db");
    }

    [Fact]
    public async Task AGateThatFailsToStop_IsLoggedUnderTheGroupsStopStep()
    {
        var logger = new RecordingLogger();
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node", Logger = logger });
        group.Add(new LifecycleGate(stop: _ => throw new IOException("flush failed"), options: new LifecycleGateOptions { Name = "db" }));
        await group.StartAsync().OrHang();

        await group.Awaiting(g => g.StopAsync()).Should().ThrowAsync<IOException>().OrHang();

        logger.Entries.Should().ContainSingle(e => e.EventId == 2006).Which["Step"].Should().Be("gates");
    }

    [Fact]
    public async Task WhileAGateStops_TheGroupNamesTheStepItWaitsFor_OrStopWhenItWaitsForNone()
    {
        // db's run returns only when the test says, after it saw its token cancelled: db waits for its run.
        var cancelSeen = Bounded.NewGate();
        var runMayReturn = Bounded.NewGate();
        var db = new LifecycleGate(
            run: async token =>
            {
                var cancelled = Bounded.NewGate();
                using (token.Register(() => cancelled.TrySetResult()))
                {
                    await cancelled.Task;
                }

                cancelSeen.TrySetResult();
                await runMayReturn.Task;
            },
            options: new LifecycleGateOptions { Name = "db" });
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node" });
        group.Add(db);
        await group.StartAsync().OrHang();

        var stop = group.StopAsync();
        await cancelSeen.Task.OrHang();
        group.PendingStopStep.Should().Be("db: run");
        runMayReturn.SetResult();
        (await stop.OrHang()).Should().BeTrue();

        // rpc's stop step fails: between its teardown giving up at that step and the gate moving to StopFailed, it waits
        // for no step (its failure is logged then).
        LifecycleGroup? other = null;
        string? seenWhileFailing = null;
        var logger = new HookedLogger(2006, () => seenWhileFailing = other!.PendingStopStep);
        var rpc = new LifecycleGate(stop: _ => throw new IOException("drain failed"), options: new LifecycleGateOptions { Name = "rpc", Logger = logger });
        other = new LifecycleGroup(new LifecycleGroupOptions { Name = "edge" });
        other.Add(rpc);
        await other.StartAsync().OrHang();

        await other.Awaiting(g => g.StopAsync()).Should().ThrowAsync<IOException>().OrHang();
        seenWhileFailing.Should().Be("rpc: stop");
    }

    [Fact]
    public async Task AStopThatRunsOutOfTime_LeavesOutTheGatesAlreadyStopped_AndOnceOverTheGroupWaitsForNoStep()
    {
        var clock = new ManualTimeProvider();
        var release = Bounded.NewGate();
        var bottom = new ScriptedGate("base", _journal) { HoldStop = release.Task };
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node", ShutdownTimeout = Deadline, TimeProvider = clock });
        group.Add(bottom.Gate);
        group.Add(Gate("cache").Gate, "base");
        await group.StartAsync().OrHang();

        var stop = group.StopAsync();
        await bottom.StopEntered.Task.OrHang(); // base's stop began: cache, which depends on it, has stopped
        await clock.WhenTimersArmed(1).OrHang();
        clock.Advance(Deadline);

        var timeout = (await stop.Awaiting(s => s.OrHang()).Should().ThrowAsync<LifecycleGroupStopTimeoutException>()).Which;
        timeout.StillStopping.Should().BeEquivalentTo(new System.Collections.Generic.Dictionary<string, string> { ["base"] = "stop" });
        timeout.NotYetStopped.Should().BeEmpty();
        group.State.Should().Be(LifecycleState.StopFailed);
        bottom.Gate.State.Should().Be(LifecycleState.Stopping);
        group.PendingStopStep.Should().BeNull("the group is not stopping any more, although one of its gates still is");

        release.SetResult();
        (await group.StopAsync().OrHang()).Should().BeTrue();
    }

    [Fact]
    public async Task AStopThatRunsOutOfTime_NamesAGateStillStartingWithStart()
    {
        var clock = new ManualTimeProvider();
        var startMayReturn = Bounded.NewGate();
        var startEntered = Bounded.NewGate();
        var cancelSeen = Bounded.NewGate();
        var slow = new LifecycleGate(
            start: async (_, token) =>
            {
                token.Register(() => cancelSeen.TrySetResult());
                startEntered.TrySetResult();
                await startMayReturn.Task; // ignores its token
            },
            options: new LifecycleGateOptions { Name = "replication", ShutdownTimeout = Timeout.InfiniteTimeSpan });
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node", ShutdownTimeout = Deadline, TimeProvider = clock });
        group.Add(slow);
        var start = group.StartAsync();
        await startEntered.Task.OrHang();

        var stop = group.StopAsync();
        await cancelSeen.Task.OrHang(); // the gate's own stop has begun: it waits for the start
        await clock.WhenTimersArmed(1).OrHang();
        clock.Advance(Deadline);

        var timeout = (await stop.Awaiting(s => s.OrHang()).Should().ThrowAsync<LifecycleGroupStopTimeoutException>()).Which;
        timeout.StillStopping.Should().BeEquivalentTo(new System.Collections.Generic.Dictionary<string, string> { ["replication"] = "start" });
        await start.Awaiting(s => s.OrHang()).Should().ThrowAsync<OperationCanceledException>();

        startMayReturn.SetResult();
        await group.StopAsync().OrHang(); // resumes the release of what the cancelled start had begun
        group.State.Should().Be(LifecycleState.Stopped);
        slow.State.Should().Be(LifecycleState.Stopped);
    }

    [Fact]
    public async Task WhileAGatesStopHasNotBegunItsTeardown_TheGroupWaitsForItsGatesStep_AndATimeoutNamesTheGateByItsState()
    {
        var gateClock = new HeldClock();
        var clock = new ManualTimeProvider();
        var db = new LifecycleGate(options: new LifecycleGateOptions { Name = "db", TimeProvider = gateClock });
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node", ShutdownTimeout = Deadline, TimeProvider = clock });
        group.Add(db);
        await group.StartAsync().OrHang();

        var dbStopBegins = gateClock.HoldNextTimestamp(); // db's stop reads its clock before anything else
        var stop = group.StopAsync();
        await dbStopBegins.Entered.OrHang();

        (group.State, db.State).Should().Be((LifecycleState.Stopping, LifecycleState.Running));
        group.PendingStopStep.Should().Be("gates", "no gate is stopping yet: the group's own step is");
        await clock.WhenTimersArmed(1).OrHang();
        clock.Advance(Deadline);

        var timeout = (await stop.Awaiting(s => s.OrHang()).Should().ThrowAsync<LifecycleGroupStopTimeoutException>()).Which;
        timeout.StillStopping.Should().BeEquivalentTo(new System.Collections.Generic.Dictionary<string, string> { ["db"] = "Running" });
        dbStopBegins.Release();
        (await group.StopAsync().OrHang()).Should().BeTrue();
        db.State.Should().Be(LifecycleState.Stopped);
    }

    [Fact]
    public async Task AGroupClosedWithABound_OrDisposed_RefusesNewGatesAsClosed()
    {
        var closed = new LifecycleGroup();
        var disposed = new LifecycleGroup();

        await closed.CloseAsync(TimeSpan.FromSeconds(5)).OrHang();
        await disposed.DisposeAsync().OrHang();

        closed.Invoking(g => g.Add(Gate("late").Gate)).Should().Throw<InvalidOperationException>().WithMessage("*has been closed*");
        disposed.Invoking(g => g.Add(Gate("late").Gate)).Should().Throw<InvalidOperationException>().WithMessage("*has been closed*");
    }

    private ScriptedGate Gate(string name) => new(name, _journal);

    /// <summary>Runs an action (once) inside the call that logs the given event id.</summary>
    private sealed class HookedLogger : ILogger
    {
        private readonly int _eventId;
        private Action? _onEvent;

        public HookedLogger(int eventId, Action onEvent) => (_eventId, _onEvent) = (eventId, onEvent);

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id == _eventId)
            {
                Interlocked.Exchange(ref _onEvent, null)?.Invoke();
            }
        }
    }
}
