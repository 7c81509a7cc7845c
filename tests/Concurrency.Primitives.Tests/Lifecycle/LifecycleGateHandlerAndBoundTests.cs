using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.Lifecycle;

/// <summary>
/// StateChanged handlers and loggers are the user's code: none of them can hold up the gate (invariants 9 and 10), and a
/// stop is bounded even by a start that ignores its token (invariant 6).
/// </summary>
public sealed class LifecycleGateHandlerAndBoundTests
{
    [Fact]
    public async Task AStartingHandlerThatWaitsForRunning_DoesNotHoldUpTheStart()
    {
        // Guava invokes doStart before it dispatches the STARTING event; a handler blocked on awaitRunning must not deadlock.
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask);
        var handlerReturned = Bounded.NewGate<bool>();
        gate.StateChanged += (_, e) =>
        {
            if (e.Current == LifecycleState.Starting)
            {
#pragma warning disable VSTHRD002 // a synchronous wait inside the handler is the point of the test
                handlerReturned.TrySetResult(gate.WhenRunning.Wait(Bounded.HangLimit));
#pragma warning restore VSTHRD002
            }
        };

        (await gate.StartAsync().OrHang()).Should().BeTrue();
        (await handlerReturned.Task.OrHang()).Should().BeTrue();
    }

    [Fact]
    public async Task AStoppingHandlerThatWaitsForTheStop_DoesNotHoldUpTheTeardown()
    {
        var gate = new LifecycleGate(run: token => Task.Delay(Timeout.Infinite, token));
        var handlerReturned = Bounded.NewGate<bool>();
        gate.StateChanged += (_, e) =>
        {
            if (e.Current == LifecycleState.Stopping)
            {
#pragma warning disable VSTHRD002 // a synchronous wait inside the handler is the point of the test
                handlerReturned.TrySetResult(gate.WhenStopped.Wait(Bounded.HangLimit));
#pragma warning restore VSTHRD002
            }
        };
        await gate.StartAsync().OrHang();

        (await gate.StopAsync().OrHang()).Should().BeTrue();
        (await handlerReturned.Task.OrHang()).Should().BeTrue("the teardown went on while the handler waited for it");
    }

    [Fact]
    public async Task ALoggerThatWaitsForTheGate_DoesNotDeadlockIt_BecauseNothingIsLoggedUnderTheGatesLock()
    {
        LifecycleGate? gate = null;
        var logger = new CallbackLogger(() =>
        {
            // Reading the gate's lock-guarded members from another thread while the log call is in progress: under the
            // gate's lock this would wait forever.
#pragma warning disable VSTHRD002 // a synchronous wait inside the logger is the point of the test
            if (!Task.Run(() => gate!.Fault).Wait(Bounded.HangLimit))
#pragma warning restore VSTHRD002
            {
                throw new TimeoutException("the logger was called under the gate's lock");
            }
        });
        gate = new LifecycleGate(start: (_, _) => Task.CompletedTask, options: new LifecycleGateOptions { Logger = logger });

        // Transitions are logged off the caller's thread, each before its StateChanged handlers run: once a handler has
        // seen Stopped, every transition of the cycle has been logged.
        var stoppedRaised = Bounded.NewGate();
        gate.StateChanged += (_, e) =>
        {
            if (e.Current == LifecycleState.Stopped)
            {
                stoppedRaised.TrySetResult();
            }
        };

        await gate.StartAsync().OrHang();
        await gate.StopAsync().OrHang();
        await stoppedRaised.Task.OrHang();

        logger.Calls.Should().BeGreaterThanOrEqualTo(4, "each of the cycle's four transitions is logged");
        logger.Failures.Should().Be(0);
    }

    [Fact]
    public async Task AStopDuringAStartThatIgnoresItsToken_IsBoundedByTheShutdownTimeout_AndTheStartsReturnFinishesIt()
    {
        var time = new ManualTimeProvider();
        var startMayReturn = Bounded.NewGate();
        var resource = new TrackedResource("client");
        var runInvoked = Bounded.NewGate<CancellationToken>();
        var gate = new LifecycleGate(
            start: async (context, _) =>
            {
                context.Own(resource);
                await startMayReturn.Task; // ignores its token
            },
            run: token =>
            {
                runInvoked.SetResult(token);
                return Task.CompletedTask;
            },
            options: new LifecycleGateOptions { ShutdownTimeout = TimeSpan.FromSeconds(5), TimeProvider = time });
        var start = gate.StartAsync();

        var stop = gate.StopAsync();
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(5));

        var timeout = (await stop.Invoking(s => s.OrHang()).Should().ThrowAsync<LifecycleStopTimeoutException>()).Which;
        timeout.Step.Should().Be("start");
        gate.State.Should().Be(LifecycleState.Starting, "the start is still running");

        startMayReturn.SetResult();
        (await start.OrHang()).Should().BeTrue();
        (await runInvoked.Task.OrHang()).IsCancellationRequested.Should().BeTrue("the stop was requested before the run was invoked");
        await gate.WhenStopped.OrHang(); // the start's return finished the stop that was asked for
        resource.IsDisposed.Should().BeTrue();
    }

    [Fact]
    public async Task DisposeAsync_OfAGateWhoseStartIgnoresItsToken_ReturnsAtTheShutdownTimeout()
    {
        var time = new ManualTimeProvider();
        var log = new RecordingLogger();
        var gate = new LifecycleGate(start: (_, _) => Bounded.NewGate().Task, options: new LifecycleGateOptions { ShutdownTimeout = TimeSpan.FromSeconds(3), TimeProvider = time, Logger = log });
        _ = gate.StartAsync();

        var dispose = gate.DisposeAsync().AsTask();
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(3));

        await dispose.Invoking(d => d.OrHang()).Should().NotThrowAsync();
        log.Entries.Should().Contain(e => e.EventId == 2010 && e.Exception is LifecycleStopTimeoutException);
    }

    [Fact]
    public async Task DisposeAsync_OfAGateWhoseRunIgnoresItsToken_ReturnsAtTheShutdownTimeout_WithoutThrowing_AndReleasesNothingUnderTheRun()
    {
        var time = new ManualTimeProvider();
        var log = new RecordingLogger();
        var resource = new TrackedResource("client");
        var gate = new LifecycleGate(
            start: (context, _) => Task.FromResult(context.Own(resource)),
            run: _ => Bounded.NewGate().Task, // ignores cancellation, never returns
            options: new LifecycleGateOptions { Name = "syncer", ShutdownTimeout = TimeSpan.FromSeconds(3), TimeProvider = time, Logger = log });
        await gate.StartAsync().OrHang();

        var dispose = gate.DisposeAsync().AsTask();
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(3));

        await dispose.Invoking(d => d.OrHang()).Should().NotThrowAsync("a host's container disposes the gate: a throw there ends the process");
        var report = log.Entries.Should().ContainSingle(e => e.EventId == 2010).Which;
        report.Level.Should().Be(LogLevel.Error);
        report.Exception.Should().BeOfType<LifecycleStopTimeoutException>().Which.Step.Should().Be("run");
        gate.State.Should().Be(LifecycleState.StopFailed);
        gate.Fault.Should().BeSameAs(report.Exception, "the failure stays readable");
        resource.IsDisposed.Should().BeFalse("nothing is released under a live run");
        gate.Completion.IsCompleted.Should().BeFalse("the teardown is not finished");
    }

    [Fact]
    public async Task OrderedTeardown_DisposeAsync_RunsATeardownNotYetRun_BoundedByItsTimeout_WithoutThrowing()
    {
        var time = new ManualTimeProvider();
        var log = new RecordingLogger();
        var released = new TrackedResource("released first");
        var teardown = new OrderedTeardown(new OrderedTeardownOptions { Name = "runner", ShutdownTimeout = TimeSpan.FromSeconds(2), TimeProvider = time, Logger = log });
        teardown.Add(_ => Bounded.NewGate().Task, "stuck");
        teardown.Add(released);

        var dispose = teardown.DisposeAsync().AsTask();
        await time.WhenTimersArmed(2).OrHang(); // the stuck step's deadline and its wait (the first step's deadline alone is 1, and goes)
        time.Advance(TimeSpan.FromSeconds(2));

        await dispose.Invoking(d => d.OrHang()).Should().NotThrowAsync();
        released.IsDisposed.Should().BeTrue("the teardown ran: steps in reverse order, up to the stuck one");
        log.Entries.Should().ContainSingle(e => e.EventId == 2011).Which.Exception.Should().BeOfType<LifecycleStopTimeoutException>().Which.Step.Should().Be("stuck");
        teardown.IsCompleted.Should().BeFalse();
    }

    private sealed class CallbackLogger : ILogger
    {
        private readonly Action _onLog;
        private int _calls;
        private int _failures;

        public CallbackLogger(Action onLog) => _onLog = onLog;

        public int Calls => Volatile.Read(ref _calls);

        public int Failures => Volatile.Read(ref _failures);

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            Interlocked.Increment(ref _calls);
            try
            {
                _onLog();
            }
            catch (TimeoutException)
            {
                Interlocked.Increment(ref _failures);
            }
        }
    }
}
