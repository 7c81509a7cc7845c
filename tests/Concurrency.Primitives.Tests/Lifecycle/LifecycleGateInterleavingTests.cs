using System;
using System.Collections.Concurrent;
using System.IO;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.Lifecycle;

/// <summary>
/// The gate where two of its paths meet: a stop and the start it waits for, a stop and the run it is about to cancel, a
/// start and the stop it waits for. Each interleaving is forced through the user's own hooks (the clock, the logger, the
/// delegates), never by timing.
/// </summary>
public sealed class LifecycleGateInterleavingTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task AStopJoiningTheStopThatEndedAStart_ReportsThatItDidNotStopTheGate()
    {
        var startMayReturn = Bounded.NewGate();
        var stopEntered = Bounded.NewGate();
        var stopMayReturn = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: async (_, _) => await startMayReturn.Task, // ignores its token: succeeds although the stop came first
            stop: async _ =>
            {
                stopEntered.TrySetResult();
                await stopMayReturn.Task;
            });
        var start = gate.StartAsync();
        var first = gate.StopAsync();

        startMayReturn.SetResult();
        await stopEntered.Task.OrHang(); // the first stop now tears down what the start acquired
        var second = gate.StopAsync();
        stopMayReturn.SetResult();

        (await first.OrHang()).Should().BeTrue("this stop waited for the start, then stopped the gate");
        (await second.OrHang()).Should().BeFalse("this stop joined the one in flight");
        (await start.OrHang()).Should().BeTrue();
        gate.State.Should().Be(LifecycleState.Stopped);
    }

    [Fact]
    public async Task AStopWhoseBoundPassesJustAsTheStartFails_ReportsTheFailedStart_NotATimeout()
    {
        // The start's failure is decided (and logged) before its waiters are told: the bound passing in between must not
        // make the stop give up on a start that has already ended.
        var clock = new ManualTimeProvider();
        var startMayFail = Bounded.NewGate();
        var logger = new HookedLogger(2002, () => clock.Advance(Bound)); // the stop's bound passes while the failure is logged
        var gate = new LifecycleGate(
            start: async (_, _) =>
            {
                await startMayFail.Task; // ignores its token
                throw new InvalidOperationException("port in use");
            },
            options: new LifecycleGateOptions { ShutdownTimeout = Bound, TimeProvider = clock, Logger = logger });
        var start = gate.StartAsync();
        var stop = gate.StopAsync();
        await clock.WhenTimersArmed().OrHang(); // the stop waits for the start, bounded

        startMayFail.SetResult();

        (await stop.OrHang()).Should().BeFalse("the start failed on its own: there was nothing for this stop to stop");
        await start.Awaiting(s => s.OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("port in use");
        gate.State.Should().Be(LifecycleState.StartFailed);
        logger.Recorded.Entries.Should().NotContain(e => e.EventId == 2005, "no step timed out");
    }

    [Fact]
    public async Task AStopThatGivesUpOnAStart_LogsTheStartAsTheStepThatTimedOut_AndAbandonedNoRun()
    {
        var clock = new ManualTimeProvider();
        var logger = new RecordingLogger();
        var startMayReturn = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: async (_, _) => await startMayReturn.Task, // ignores its token
            options: new LifecycleGateOptions { Name = "syncer", ShutdownTimeout = Bound, TimeProvider = clock, Logger = logger });
        var start = gate.StartAsync();

        var stop = gate.StopAsync();
        await clock.WhenTimersArmed().OrHang();
        clock.Advance(Bound);

        var timeout = (await stop.Awaiting(s => s.OrHang()).Should().ThrowAsync<LifecycleStopTimeoutException>()).Which;
        (timeout.Step, timeout.Timeout, timeout.RunAbandoned).Should().Be(("start", Bound, false));
        var entry = logger.Entries.Should().ContainSingle(e => e.EventId == 2005).Which;
        entry.Level.Should().Be(LogLevel.Warning);
        entry["Step"].Should().Be("start");
        entry["Timeout"].Should().Be(Bound);

        startMayReturn.SetResult();
        (await start.OrHang()).Should().BeTrue();
        await gate.WhenStopped.OrHang(); // the start's return finished the stop that was asked for
    }

    [Fact]
    public async Task AStartThatOutlivesAStopsBound_InvokesTheRunWithItsTokenAlreadyCancelled_BeforeTheResumedStopCancelsIt()
    {
        var clock = new HeldClock();
        var startMayReturn = Bounded.NewGate();
        var cancelledWhenInvoked = Bounded.NewGate<bool>();
        var gate = new LifecycleGate(
            start: async (_, _) => await startMayReturn.Task, // ignores its token
            run: token =>
            {
                cancelledWhenInvoked.TrySetResult(token.IsCancellationRequested);
                return Task.CompletedTask;
            },
            options: new LifecycleGateOptions { ShutdownTimeout = Bound, TimeProvider = clock });
        var start = gate.StartAsync();
        var stop = gate.StopAsync();
        await clock.Clock.WhenTimersArmed().OrHang();
        clock.Clock.Advance(Bound);
        await stop.Awaiting(s => s.OrHang()).Should().ThrowAsync<LifecycleStopTimeoutException>();

        var resumedStop = clock.HoldNextTimestamp(); // the stop the start's return resumes reads the clock first: it waits there
        startMayReturn.SetResult();
        await resumedStop.Entered.OrHang();

        (await cancelledWhenInvoked.Task.OrHang()).Should().BeTrue("the stop was asked for before the run was invoked, and nothing else has cancelled it yet");
        resumedStop.Release();
        (await start.OrHang()).Should().BeTrue();
        await gate.WhenStopped.OrHang();
    }

    [Fact]
    public async Task ARunThatFaultsAfterAStopWasAskedFor_IsThrownByThatStop_NotReportedAsARunFault()
    {
        var clock = new HeldClock();
        var logger = new RecordingLogger();
        var run = new TaskCompletionSource(); // completed by the test: the gate's observer of the run sees its end inline
        var gate = new LifecycleGate(run: _ => run.Task, options: new LifecycleGateOptions { TimeProvider = clock, Logger = logger });
        var transitions = new ConcurrentQueue<LifecycleState>();
        var stopped = Bounded.NewGate();
        gate.StateChanged += (_, change) =>
        {
            transitions.Enqueue(change.Current);
            if (change.Current == LifecycleState.Stopped)
            {
                stopped.TrySetResult();
            }
        };
        await gate.StartAsync().OrHang();

        var stopBegins = clock.HoldNextTimestamp(); // the stop reads the clock before it cancels anything
        var stop = gate.StopAsync();
        await stopBegins.Entered.OrHang();
        gate.State.Should().Be(LifecycleState.Running, "the stop was asked for; its teardown has not begun");
        run.SetException(new IOException("connection reset"));
        stopBegins.Release();

        await stop.Awaiting(s => s.OrHang()).Should().ThrowAsync<IOException>().WithMessage("connection reset");
        await stopped.Task.OrHang();
        transitions.Should().Equal(LifecycleState.Starting, LifecycleState.Running, LifecycleState.Stopping, LifecycleState.Stopped);
        logger.Entries.Should().NotContain(e => e.EventId == 2003, "the stop that was asked for reports it: it is not a fault of a running gate");
    }

    [Fact]
    public async Task AStartWaitingForAStop_WhileAnotherCallerStartsTheGate_ReportsThatItDidNotStartIt()
    {
        using var durations = new MetricCollector<double>(meterScope: null, ConcurrencyPrimitivesTelemetry.MeterName, "concurrency.primitives.gate.stop.duration");
        var clock = new HeldClock();
        var starts = 0;
        var stopEntered = Bounded.NewGate();
        var stopMayReturn = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: (_, _) =>
            {
                Interlocked.Increment(ref starts);
                return Task.CompletedTask;
            },
            stop: async _ =>
            {
                stopEntered.TrySetResult();
                await stopMayReturn.Task;
            },
            options: new LifecycleGateOptions { AllowRestart = true, TimeProvider = clock });
        await gate.StartAsync().OrHang();
        var stop = gate.StopAsync();
        await stopEntered.Task.OrHang();

        var waiting = gate.StartAsync(); // the gate is Stopping: this start waits for the stop
        var stoppedButNotReleased = clock.HoldNextTimestamp(); // once Stopped, the stop reads the clock for its duration, then releases its callers
        stopMayReturn.SetResult();
        await stoppedButNotReleased.Entered.OrHang();
        gate.State.Should().Be(LifecycleState.Stopped);
        waiting.IsCompleted.Should().BeFalse("the stop it waits for has not released its callers");
        (await gate.StartAsync().OrHang()).Should().BeTrue("this call started the next cycle");
        stoppedButNotReleased.Release();

        (await stop.OrHang()).Should().BeTrue();
        (await waiting.OrHang()).Should().BeFalse("another call started the gate while this one waited for the stop");
        gate.State.Should().Be(LifecycleState.Running);
        starts.Should().Be(2);
    }

    [Fact]
    public async Task AStartWaitingForAStopThatFails_ReportsTheGateLeftStopFailed()
    {
        var stopEntered = Bounded.NewGate();
        var stopMayFail = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: (_, _) => Task.CompletedTask,
            stop: async _ =>
            {
                stopEntered.TrySetResult();
                await stopMayFail.Task;
                throw new IOException("flush failed");
            },
            options: new LifecycleGateOptions { Name = "syncer", AllowRestart = true });
        await gate.StartAsync().OrHang();
        var stop = gate.StopAsync();
        await stopEntered.Task.OrHang();

        var waiting = gate.StartAsync();
        stopMayFail.SetResult();

        await stop.Awaiting(s => s.OrHang()).Should().ThrowAsync<IOException>();
        await waiting.Awaiting(w => w.OrHang()).Should().ThrowAsync<InvalidOperationException>()
            .WithMessage("Gate 'syncer' is StopFailed with its teardown unfinished. Call StopAsync to finish the teardown before starting again.");
        gate.State.Should().Be(LifecycleState.StopFailed);
    }

    [Fact]
    public async Task AStartWhoseCallerGivesUpWhileAStopIsInFlight_StartsNothing()
    {
        var starts = 0;
        var stopEntered = Bounded.NewGate();
        var stopMayReturn = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: (_, _) =>
            {
                Interlocked.Increment(ref starts);
                return Task.CompletedTask;
            },
            stop: async _ =>
            {
                stopEntered.TrySetResult();
                await stopMayReturn.Task;
            },
            options: new LifecycleGateOptions { AllowRestart = true });
        await gate.StartAsync().OrHang();
        var stop = gate.StopAsync();
        await stopEntered.Task.OrHang();
        using var impatient = new CancellationTokenSource();

        var waiting = gate.StartAsync(impatient.Token);
        await impatient.CancelAsync();
        stopMayReturn.SetResult();

        (await stop.OrHang()).Should().BeTrue();
        await waiting.Awaiting(w => w.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        gate.State.Should().Be(LifecycleState.Stopped, "the caller gave up waiting for the stop: its start never began");
        starts.Should().Be(1);
    }

    /// <summary>Records every event, and runs an action (once) inside the call that logs the given event id.</summary>
    private sealed class HookedLogger : ILogger
    {
        private readonly int _eventId;
        private Action? _onEvent;

        public HookedLogger(int eventId, Action onEvent) => (_eventId, _onEvent) = (eventId, onEvent);

        public RecordingLogger Recorded { get; } = new();

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            Recorded.Log(logLevel, eventId, state, exception, formatter);
            if (eventId.Id == _eventId)
            {
                Interlocked.Exchange(ref _onEvent, null)?.Invoke();
            }
        }
    }
}
