using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.SystematicTests.Harness;
using Microsoft.Coyote.Specifications;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Concurrency.Primitives.SystematicTests.Lifecycle;

/// <summary>
/// A group's state-change events run on their own work item, so a handler that blocks makes every later event come late.
/// With <see cref="LifecycleGroupFaultPolicy.StopGroup"/> the group stops itself when it handles its own RunFaulted event,
/// and only then: an event that comes late must request nothing, whichever state the group has reached since. A stop
/// requested by the wrong event runs at once, on the pool, so only a schedule that lets it run before the late event's
/// handler looks can show it; Coyote explores those schedules.
/// </summary>
public sealed class LifecycleGroupLateEventSystematicTests
{
    private const uint Iterations = 1_000;
    
    private readonly ITestOutputHelper _output;

    public LifecycleGroupLateEventSystematicTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void LifecycleGroup_ALateFaultEvent_DoesNotResumeAStopThatFailed()
    {
        var report = CoyoteHarness.Explore(_output, "LifecycleGroup, a late RunFaulted event while the group's stop has failed", Iterations, LateFaultAfterFailedStopScenarioAsync);

        report.ShouldHoldEverywhere();
    }

    [Fact]
    public void LifecycleGroup_ALateStartFailedEvent_StopsNothing_EvenWhenTheGroupHasFaultedWithTheSameException()
    {
        var report = CoyoteHarness.Explore(_output, "LifecycleGroup, a late StartFailed event while the group is RunFaulted", Iterations, LateStartFailedWhileRunFaultedScenarioAsync);

        report.ShouldHoldEverywhere();
    }

    /// <summary>
    /// The group's RunFaulted event waits behind a held handler while the test stops the group, and the stop fails (the
    /// member's stop step throws the very exception its run faulted with). When the late RunFaulted event is handled the
    /// group is StopFailed with that same exception: the stop after a fault must not be driven from it (a failed stop
    /// waits for the next StopAsync, the caller's), so the member's stop step runs once until the test resumes it.
    /// </summary>
    private static async Task LateFaultAfterFailedStopScenarioAsync()
    {
        var stage = new Stage();
        var (group, member, violations) = (stage.Group, stage.Member, stage.Violations);
        var stopFailedSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        group.StateChanged += (_, e) =>
        {
            switch (e.Current)
            {
                case LifecycleState.Running:
                    stage.HoldEvents(); // every later event of the group waits behind this one
                    break;
                case LifecycleState.RunFaulted:
                    violations.Check(group.State == LifecycleState.StopFailed && member.Stops == 1,
                        $"while the late RunFaulted event was handled the group was {group.State} and the member's stop step had run {member.Stops} time(s): the failed stop was resumed by the event");
                    break;
                case LifecycleState.StopFailed:
                    stopFailedSeen.TrySetResult();
                    break;
            }
        };

        await group.StartAsync();
        var fault = new InvalidOperationException("db faulted");
        member.NextStopFailure = fault;
        member.FaultRun(fault);
        await stage.Log.GroupRunFaulted.Task; // logged just after the group became RunFaulted (its event is held)

        await ExpectAsync(group.StopAsync(), fault);
        Specification.Assert(group.State == LifecycleState.StopFailed && ReferenceEquals(group.Fault, fault), $"The group is {group.State} after a stop whose step failed.");

        stage.ReleaseEvents(); // the late RunFaulted event, then Stopping and StopFailed, reach the group now
        await stopFailedSeen.Task;
        violations.Check(group.State == LifecycleState.StopFailed && member.Stops == 1,
            $"after every queued event was handled the group was {group.State} and the member's stop step had run {member.Stops} time(s): nobody resumed the failed stop");

        await ExpectAsync(group.StopAsync(), fault); // the caller's stop resumes it and throws the run's fault
        Specification.Assert(group.State == LifecycleState.Stopped && member.Stops == 2, $"The group is {group.State} after the resumed stop (the member's stop step ran {member.Stops} time(s)).");
        violations.AssertNone();
    }

    /// <summary>
    /// The group's first start fails; its StartFailed event waits behind a held handler while the group starts again and
    /// its member's run faults with the very exception the first start failed with. While the late StartFailed event (and
    /// the second cycle's Starting and Running) are handled, the group is RunFaulted with that exception, and nothing may
    /// stop it yet: the stop is its own RunFaulted event's to request.
    /// </summary>
    private static async Task LateStartFailedWhileRunFaultedScenarioAsync()
    {
        var stage = new Stage();
        var (group, member, violations) = (stage.Group, stage.Member, stage.Violations);
        var runFaultedSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var held = 0;
        group.StateChanged += (_, e) =>
        {
            if (e.Current == LifecycleState.Starting && Interlocked.Increment(ref held) == 1)
            {
                stage.HoldEvents(); // the first cycle's Starting: every later event of the group waits behind it
                return;
            }

            if (runFaultedSeen.Task.IsCompleted)
            {
                return; // the stop the group's own RunFaulted event requested: its Stopping and Stopped
            }

            if (e.Current == LifecycleState.RunFaulted)
            {
                runFaultedSeen.TrySetResult();
                return;
            }

            violations.Check(group.State == LifecycleState.RunFaulted && member.Stops == 0,
                $"while the late {e.Current} event was handled the group was {group.State} and the member's stop step had run {member.Stops} time(s): a stop was requested before the group's RunFaulted event");
        };

        member.NextStartFailure = new InvalidOperationException("db did not start");
        try
        {
            await group.StartAsync();
            Specification.Assert(false, "The group's start succeeded, though its member's start failed.");
        }
        catch (Exception)
        {
            // The member's failure, as the group reports it.
        }

        Specification.Assert(group.State == LifecycleState.StartFailed && group.Fault is not null, $"The group is {group.State} after a failed start.");
        var startFailure = group.Fault!;

        await group.StartAsync();
        member.FaultRun(startFailure); // the same instance: the group's RunFaulted carries its StartFailed event's exception
        await stage.Log.GroupRunFaulted.Task; // logged just after the group became RunFaulted (its event is held)

        stage.ReleaseEvents(); // StartFailed, then the second Starting and Running, then RunFaulted reach the group now
        await runFaultedSeen.Task; // its own RunFaulted event requests the stop, which this one joins, drives or finds done
        await ExpectAsync(group.StopAsync(), startFailure, orAlreadyStopped: true);
        Specification.Assert(group.State == LifecycleState.Stopped && member.Stops == 1, $"The group is {group.State} after its stop (the member's stop step ran {member.Stops} time(s)).");
        violations.AssertNone();
    }

    private static async Task ExpectAsync(Task<bool> stop, Exception expected, bool orAlreadyStopped = false)
    {
        try
        {
            var stopped = await stop;
            Specification.Assert(orAlreadyStopped && !stopped, $"The stop did not throw '{expected.Message}'.");
        }
        catch (Exception exception) when (ReferenceEquals(exception, expected))
        {
            // The run's fault (or the failed step's, the same instance here), as the stop throws it.
        }
    }

    /// <summary>A group of one restartable member, its logger, the gate that holds its event work item, and what its handlers saw.</summary>
    private sealed class Stage
    {
        private readonly TaskCompletionSource _hold = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Stage()
        {
            Group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node", Logger = Log });
            Group.Add(Member.Gate);
        }

        public ScriptedMember Member { get; } = new("db");

        public RunFaultLog Log { get; } = new();

        public LifecycleGroup Group { get; }

        public Violations Violations { get; } = new();

        /// <summary>Called from a handler: blocks the group's event work item until <see cref="ReleaseEvents"/>.</summary>
#pragma warning disable VSTHRD002 // holding the group's event work item is the scenario
        public void HoldEvents() => _hold.Task.Wait();
#pragma warning restore VSTHRD002

        public void ReleaseEvents() => _hold.SetResult();
    }

    /// <summary>The group's logger: tells when the group's own run fault is logged (event 2003, after its RunFaulted transition).</summary>
    private sealed class RunFaultLog : ILogger
    {
        public TaskCompletionSource GroupRunFaulted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id == 2003)
            {
                GroupRunFaulted.TrySetResult();
            }
        }
    }

    /// <summary>What a handler saw (a handler's exception would be logged by the group, not reported), asserted at the end.</summary>
    private sealed class Violations
    {
        private readonly List<string> _seen = new();

        public void Check(bool holds, string message)
        {
            if (!holds)
            {
                lock (_seen)
                {
                    _seen.Add(message);
                }
            }
        }

        public void AssertNone()
        {
            lock (_seen)
            {
                Specification.Assert(_seen.Count == 0, string.Join(" | ", _seen));
            }
        }
    }

    /// <summary>A restartable member whose next start or stop can be made to fail, and whose run faults when told to.</summary>
    private sealed class ScriptedMember
    {
        private TaskCompletionSource<Exception> _fault = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _stops;

        public ScriptedMember(string name) =>
            Gate = new LifecycleGate(StartAsync, RunAsync, StopAsync, new LifecycleGateOptions { Name = name, AllowRestart = true });

        public LifecycleGate Gate { get; }

        public int Stops => Volatile.Read(ref _stops);

        public Exception? NextStartFailure { get; set; }

        public Exception? NextStopFailure { get; set; }

        public void FaultRun(Exception fault) => Volatile.Read(ref _fault).TrySetResult(fault);

        private Task StartAsync(LifecycleContext context, CancellationToken token)
        {
            Volatile.Write(ref _fault, new TaskCompletionSource<Exception>(TaskCreationOptions.RunContinuationsAsynchronously));
            var failure = NextStartFailure;
            NextStartFailure = null;
            return failure is null ? Task.CompletedTask : Task.FromException(failure);
        }

        private async Task RunAsync(CancellationToken token)
        {
            var fault = Volatile.Read(ref _fault);
            var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using (token.Register(() => cancelled.TrySetResult()))
            {
                if (await Task.WhenAny(fault.Task, cancelled.Task) == fault.Task)
                {
                    throw await fault.Task;
                }
            }
        }

        private Task StopAsync(CancellationToken token)
        {
            Interlocked.Increment(ref _stops);
            var failure = NextStopFailure;
            NextStopFailure = null;
            return failure is null ? Task.CompletedTask : Task.FromException(failure);
        }
    }
}
