using System;
using System.Collections.Concurrent;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace Concurrency.Primitives.Tests.Lifecycle;

/// <summary>LifecycleGroup: a gate that faults while running (both policies), and the total stop deadline.</summary>
public sealed class LifecycleGroupFaultAndTimeoutTests
{
    private readonly ConcurrentQueue<string> _journal = new();

    [Fact]
    public async Task GateFaultWhileRunning_StopGroup_ReportsIt_ThenStopsEverythingInReverse()
    {
        var name = "stop-group-" + Guid.NewGuid().ToString("N");
        using var faults = new MetricCollector<long>(meterScope: null, ConcurrencyPrimitivesTelemetry.MeterName, "concurrency.primitives.group.gate_faults");
        var logger = new RecordingLogger();
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = name, Logger = logger });
        var db = Gate("db");
        group.Add(db.Gate);
        group.Add(Gate("sync").Gate, "db");
        group.Add(Gate("rpc").Gate, "sync");
        var reported = Bounded.NewGate<LifecycleGateFaultedEventArgs>();
        group.GateFaulted += (_, e) => reported.TrySetResult(e);
        await group.StartAsync().OrHang();

        var fault = new InvalidOperationException("disk gone");
        db.FaultRun(fault);

        var report = await reported.Task.OrHang();
        report.GateName.Should().Be("db");
        report.Exception.Should().BeSameAs(fault);
        report.Policy.Should().Be(LifecycleGroupFaultPolicy.StopGroup);
        await group.WhenStopped.OrHang();
        group.State.Should().Be(LifecycleState.Stopped);
        _journal.Where(e => e.StartsWith("stop:", StringComparison.Ordinal)).Should().Equal("stop:rpc", "stop:sync", "stop:db");
        var entry = await logger.WaitFor(e => e.EventId == 2012).OrHang();
        entry["Gate"].Should().Be("db");
        entry.Exception.Should().BeSameAs(fault);
        faults.GetMeasurementSnapshot().Where(m => (string?)m.Tags["group.name"] == name).Sum(m => m.Value).Should().Be(1);
        faults.GetMeasurementSnapshot().Single(m => (string?)m.Tags["group.name"] == name).Tags["gate.name"].Should().Be("db");
    }

    [Fact]
    public async Task GateFaultWhileRunning_Isolate_ReportsIt_AndTheOtherGatesKeepRunning()
    {
        var group = new LifecycleGroup(new LifecycleGroupOptions { OnGateFault = LifecycleGroupFaultPolicy.Isolate });
        var cache = Gate("cache");
        var db = Gate("db");
        group.Add(db.Gate);
        group.Add(cache.Gate, "db");
        group.Add(Gate("rpc").Gate, "db");
        var reported = Bounded.NewGate<LifecycleGateFaultedEventArgs>();
        group.GateFaulted += (_, e) => reported.TrySetResult(e);
        await group.StartAsync().OrHang();

        cache.FaultRun(new InvalidOperationException("cache corrupt"));

        (await reported.Task.OrHang()).GateName.Should().Be("cache");
        group.State.Should().Be(LifecycleState.Running);
        db.Gate.State.Should().Be(LifecycleState.Running);
        cache.Gate.State.Should().Be(LifecycleState.RunFaulted);
        _journal.Should().NotContain(e => e.StartsWith("stop:", StringComparison.Ordinal));

        (await group.StopAsync().OrHang()).Should().BeTrue("the fault was reported when it happened; the stop finishes the teardown");
        cache.Gate.State.Should().Be(LifecycleState.Stopped);
        _journal.Last().Should().Be("stop:db");
    }

    [Fact]
    public async Task AFaultEventThatComesLate_DoesNotStopTheGroupsNextStart()
    {
        var group = new LifecycleGroup(new LifecycleGroupOptions { AllowRestart = true });
        var release = Bounded.NewGate();
        var db = new ScriptedGate("db", _journal, new LifecycleGateOptions { AllowRestart = true });
        group.Add(db.Gate);
        var events = Bounded.NewGate(); // holds the group's event work item: every later event of the group waits behind it
        var secondStartSeen = Bounded.NewGate();
        var starts = 0;
        group.StateChanged += (_, e) =>
        {
            if (e.Current == LifecycleState.Running)
            {
#pragma warning disable VSTHRD002 // holding the event work item is the scenario
                events.Task.Wait(Bounded.HangLimit);
#pragma warning restore VSTHRD002
            }

            if (e.Current == LifecycleState.Starting && ++starts == 2)
            {
                secondStartSeen.SetResult(); // raised after the first cycle's RunFaulted, whose handling came first
            }
        };
        await group.StartAsync().OrHang();
        db.FaultRun(new InvalidOperationException("first cycle's fault"));
        // The group's RunFaulted event is queued behind the held handler: only its state shows the fault.
        await Bounded.Until(() => group.State == LifecycleState.RunFaulted, "the group's RunFaulted state");

        await group.Awaiting(g => g.StopAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("first cycle's fault");
        db.HoldStart = release.Task; // the next start stays in progress
        db.StartEntered = Bounded.NewGate();
        var restart = group.StartAsync();
        await db.StartEntered.Task.OrHang();
        events.SetResult(); // the first cycle's RunFaulted event now reaches the group, during the second start
        await secondStartSeen.Task.OrHang();
        release.SetResult();

        (await restart.OrHang()).Should().BeTrue("the late fault event cancelled nothing");
        group.State.Should().Be(LifecycleState.Running, "the second cycle runs: its run has no fault of its own");
        (await group.StopAsync().OrHang()).Should().BeTrue("the late fault event stopped nothing: this call stops the group");
    }

    [Fact]
    public async Task FaultingHandler_IsLogged_AndTheOtherHandlersStillRun()
    {
        var logger = new RecordingLogger();
        var group = new LifecycleGroup(new LifecycleGroupOptions { Logger = logger, OnGateFault = LifecycleGroupFaultPolicy.Isolate });
        var db = Gate("db");
        group.Add(db.Gate);
        var second = Bounded.NewGate();
        group.GateFaulted += (_, _) => throw new InvalidOperationException("handler bug");
        group.GateFaulted += (_, _) => second.TrySetResult();
        await group.StartAsync().OrHang();

        db.FaultRun(new InvalidOperationException("fault"));

        await second.Task.OrHang();
        (await logger.WaitFor(e => e.EventId == 2016).OrHang()).Exception!.Message.Should().Be("handler bug");
    }

    [Fact]
    public async Task TotalDeadline_TwoGatesStuckStopping_BothNamedWithTheirStep_TheirDependencyLeftRunning()
    {
        var clock = new ManualTimeProvider();
        var release = Bounded.NewGate();
        var noBound = new LifecycleGateOptions { ShutdownTimeout = Timeout.InfiniteTimeSpan };
        var rpc = new ScriptedGate("rpc", _journal, noBound) { HoldStop = release.Task };
        var sync = new ScriptedGate("sync", _journal, new LifecycleGateOptions { ShutdownTimeout = Timeout.InfiniteTimeSpan }) { HoldStop = release.Task };
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node", ShutdownTimeout = TimeSpan.FromSeconds(10), TimeProvider = clock });
        group.Add(Gate("db").Gate);
        group.Add(rpc.Gate, "db");
        group.Add(sync.Gate, "db");
        await group.StartAsync().OrHang();

        var stop = group.StopAsync();
        await Task.WhenAll(rpc.StopEntered.Task, sync.StopEntered.Task).OrHang();
        await clock.WhenTimersArmed(1).OrHang(); // the group's deadline (the gates have none of their own here)
        clock.Advance(TimeSpan.FromSeconds(9.9));
        stop.IsCompleted.Should().BeFalse();
        clock.Advance(TimeSpan.FromSeconds(0.1));

        var timeout = (await stop.Awaiting(s => s.OrHang()).Should().ThrowAsync<LifecycleGroupStopTimeoutException>()).Which;
        timeout.StillStopping.Should().BeEquivalentTo(new System.Collections.Generic.Dictionary<string, string> { ["rpc"] = "stop", ["sync"] = "stop" });
        timeout.NotYetStopped.Should().Equal("db");
        timeout.Message.Should().Contain("'rpc' (waiting for 'stop')").And.Contain("'sync' (waiting for 'stop')").And.Contain("'db'");
        timeout.Timeout.Should().Be(TimeSpan.FromSeconds(10));
        group.State.Should().Be(LifecycleState.StopFailed);
        _journal.Should().NotContain("stop:db");

        release.SetResult();
        (await group.StopAsync().OrHang()).Should().BeTrue("a stop after a timeout resumes it");
        group.State.Should().Be(LifecycleState.Stopped);
        _journal.Last().Should().Be("stop:db");
    }

    [Fact]
    public async Task AStopBoundPassingBeforeAnIndependentGatesStopBegins_ListsThatGateAsStopping_NeverAsHeldBackByADependent()
    {
        // Each gate's stop is queued to the pool: when the bound passes, an independent gate's stop may not have begun
        // yet. Nothing depends on it, so nothing holds it back, and the error must not say that something does.
        var clock = new ManualTimeProvider();
        var release = Bounded.NewGate();
        var independent = Enumerable.Range(0, 8).Select(i => Gate("quick" + i)).ToArray();
        var slow = new ScriptedGate("slow", _journal, new LifecycleGateOptions { ShutdownTimeout = Timeout.InfiniteTimeSpan }) { HoldStop = release.Task };
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node", ShutdownTimeout = TimeSpan.FromSeconds(1), TimeProvider = clock });
        group.Add(slow.Gate); // first in the plan: its stop is queued last, and a pool thread's own queue runs it first
        foreach (var gate in independent)
        {
            group.Add(gate.Gate);
        }

        await group.StartAsync().OrHang();

        var stop = group.StopAsync();
        await slow.StopEntered.Task.OrHang();
        await clock.WhenTimersArmed(1).OrHang();
        clock.Advance(TimeSpan.FromSeconds(1));

        var timeout = (await stop.Awaiting(s => s.OrHang()).Should().ThrowAsync<LifecycleGroupStopTimeoutException>()).Which;
        timeout.NotYetStopped.Should().BeEmpty("no gate depends on another here");
        timeout.StillStopping.Should().ContainKey("slow").WhoseValue.Should().Be("stop");
        timeout.StillStopping.Keys.Should().BeSubsetOf(independent.Select(gate => gate.Gate.Name).Append("slow"));
        timeout.Message.Should().NotContain("depends on");

        release.SetResult();
        (await group.StopAsync().OrHang()).Should().BeTrue();
        independent.Append(slow).Select(gate => gate.Gate.State).Should().AllBeEquivalentTo(LifecycleState.Stopped);
    }

    [Fact]
    public async Task CloseAsyncWithATimeout_NamesTheGateStillStopping_AndRefusesLaterStarts()
    {
        var clock = new ManualTimeProvider();
        var release = Bounded.NewGate();
        var rpc = new ScriptedGate("rpc", _journal, new LifecycleGateOptions { ShutdownTimeout = Timeout.InfiniteTimeSpan }) { HoldStop = release.Task };
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node", ShutdownTimeout = Timeout.InfiniteTimeSpan, TimeProvider = clock });
        group.Add(Gate("db").Gate);
        group.Add(rpc.Gate, "db");
        await group.StartAsync().OrHang();

        var close = group.CloseAsync(TimeSpan.FromSeconds(5));
        await rpc.StopEntered.Task.OrHang();
        await clock.WhenTimersArmed(1).OrHang();
        clock.Advance(TimeSpan.FromSeconds(5));

        var timeout = (await close.Awaiting(c => c.OrHang()).Should().ThrowAsync<LifecycleGroupStopTimeoutException>()).Which;
        timeout.StillStopping.Should().ContainKey("rpc").WhoseValue.Should().Be("stop");
        timeout.NotYetStopped.Should().Equal("db");
        release.SetResult();
        await group.Completion.OrHang();
        await group.Awaiting(g => g.StartAsync()).Should().ThrowAsync<ClosedException>();
    }

    [Fact]
    public async Task TwoGatesThatFailToStop_AreBothReported_InOneAggregateThatSaysHowToResume()
    {
        var first = new InvalidOperationException("flush failed");
        var second = new InvalidOperationException("close failed");
        var failing = true;
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node" });
        group.Add(new LifecycleGate(stop: _ => failing ? throw first : Task.CompletedTask, options: new LifecycleGateOptions { Name = "sync" }));
        group.Add(new LifecycleGate(stop: _ => failing ? throw second : Task.CompletedTask, options: new LifecycleGateOptions { Name = "rpc" }));
        await group.StartAsync().OrHang();

        var aggregate = (await group.Awaiting(g => g.StopAsync().OrHang()).Should().ThrowAsync<AggregateException>()).Which;

        aggregate.Message.Should().StartWith("Group 'node': 2 gates did not stop; the gates they depend on are left running. Stop the group again to resume.");
        aggregate.InnerExceptions.Should().BeEquivalentTo(new[] { first, second });
        failing = false;
        (await group.StopAsync().OrHang()).Should().BeTrue();
    }

    [Fact]
    public async Task WhileGatesStop_TheGroupsPendingStep_NamesEachWithItsStep()
    {
        var release = Bounded.NewGate();
        var entered = new[] { Bounded.NewGate(), Bounded.NewGate() };
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node" });
        group.Add(new LifecycleGate(stop: _ => { entered[0].TrySetResult(); return release.Task; }, options: new LifecycleGateOptions { Name = "sync" }));
        group.Add(new LifecycleGate(stop: _ => { entered[1].TrySetResult(); return release.Task; }, options: new LifecycleGateOptions { Name = "rpc" }));
        await group.StartAsync().OrHang();
        group.PendingStopStep.Should().BeNull("the group is running");

        var stop = group.StopAsync();
        await Task.WhenAll(entered[0].Task, entered[1].Task).OrHang();

        group.PendingStopStep!.Split(", ").Should().BeEquivalentTo("sync: stop", "rpc: stop");
        release.SetResult();
        (await stop.OrHang()).Should().BeTrue();
        group.PendingStopStep.Should().BeNull();
    }

    [Fact]
    public async Task AGateThatFailsToStop_LeavesItsDependenciesRunning_AndAStopAgainResumes()
    {
        var failure = new InvalidOperationException("flush failed");
        var attempts = 0;
        var db = Gate("db");
        var sync = new LifecycleGate(stop: _ => ++attempts == 1 ? throw failure : Task.CompletedTask, options: new LifecycleGateOptions { Name = "sync" });
        var group = new LifecycleGroup();
        group.Add(db.Gate);
        group.Add(sync, "db");
        await group.StartAsync().OrHang();

        (await group.Awaiting(g => g.StopAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(failure);
        group.State.Should().Be(LifecycleState.StopFailed);
        db.Gate.State.Should().Be(LifecycleState.Running);

        (await group.StopAsync().OrHang()).Should().BeTrue();
        db.Gate.State.Should().Be(LifecycleState.Stopped);
        sync.State.Should().Be(LifecycleState.Stopped);
    }

    [Fact]
    public async Task DisposeAsync_StopsTheGates_AndNeverThrows()
    {
        var logger = new RecordingLogger();
        var sync = new LifecycleGate(stop: _ => throw new InvalidOperationException("stuck"), options: new LifecycleGateOptions { Name = "sync" });
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node", Logger = logger });
        group.Add(Gate("db").Gate);
        group.Add(sync, "db");
        await group.StartAsync().OrHang();

        await group.DisposeAsync().OrHang();

        group.State.Should().Be(LifecycleState.StopFailed);
        logger.Entries.Should().Contain(e => e.EventId == 2010 && e.Exception!.Message == "stuck");
        await group.Awaiting(g => g.StartAsync()).Should().ThrowAsync<ObjectDisposedException>();
    }

    private ScriptedGate Gate(string name) => new(name, _journal);
}
