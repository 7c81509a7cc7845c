using System;
using System.Collections.Concurrent;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Logging;
using static Concurrency.Primitives.LifecycleState;

namespace Concurrency.Primitives.Tests.Conformance;

/// <summary>
/// The Microsoft.Extensions.Hosting.BackgroundService pain points the gate claims to fix: ExecuteAsync is the gate's Run,
/// StartAsync/StopAsync are the gate's, and the host's ShutdownTimeout is the gate's <see cref="LifecycleGateOptions.ShutdownTimeout"/>.
/// </summary>
public sealed class BackgroundServiceConformanceTests
{
    [Fact]
    public async Task ARunWhoseSynchronousPartThrows_DoesNotFailTheStart_FaultsTheGate_AndTheStopRethrowsItAfterReleasing()
    {
        // Ports the BackgroundService pain point: an ExecuteAsync whose synchronous part throws fails StartAsync (and the
        // host) or not depending on where the throw sits. The gate invokes the run on the pool after a successful start:
        // the fault moves the gate to RunFaulted and is thrown by the next stop, after the teardown.
        var bad = new InvalidOperationException("bad configuration");
        var client = new TrackedResource("client");
        var gate = new LifecycleGate(
            start: (context, _) => Task.FromResult(context.Own(client)),
            run: _ => throw bad);
        var recorder = new TransitionRecorder(gate);

        (await gate.StartAsync().OrHang()).Should().BeTrue();

        (await recorder.WhenReached(RunFaulted).OrHang()).Exception.Should().BeSameAs(bad);
        gate.Fault.Should().BeSameAs(bad);
        client.IsDisposed.Should().BeFalse("nothing is released until a stop tears the gate down");
        (await gate.Invoking(g => g.StopAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(bad);
        client.IsDisposed.Should().BeTrue();
        gate.State.Should().Be(Stopped);
    }

    [Fact]
    public async Task ARunWhoseSynchronousPartBlocks_DoesNotHoldUpStartAsync_AndStillStopsOnItsToken()
    {
        // Ports the BackgroundService pain point: a synchronous ExecuteAsync prefix (a blocking poll before the first
        // await) holds StartAsync, and the host's startup, hostage. The gate invokes the run on the thread pool.
        using var neverSet = new ManualResetEventSlim();
        var runEntered = Bounded.NewGate();
        var gate = new LifecycleGate(
            run: token =>
            {
                runEntered.SetResult();
                neverSet.Wait(token); // blocks its thread until the stop cancels the token
                return Task.CompletedTask;
            });

        (await gate.StartAsync().OrHang()).Should().BeTrue();
        await runEntered.Task.OrHang();
        gate.State.Should().Be(Running);

        (await gate.StopAsync().OrHang()).Should().BeTrue();
        gate.State.Should().Be(Stopped);
    }

    [Fact]
    public async Task ARunThatFaultsAfterItsFirstAwait_IsLoggedAndSurfacedByStopAsync_NotSwallowed()
    {
        // Ports the BackgroundService pain point: an exception thrown by ExecuteAsync after its first await is stored in a
        // task nobody awaits (swallowed before .NET 6). The gate logs it (2003), moves to RunFaulted, and the stop throws it.
        var logger = new RecordingLogger();
        var fault = new InvalidOperationException("replication broke");
        var runMayFail = Bounded.NewGate();
        var gate = new LifecycleGate(
            run: async _ =>
            {
                await runMayFail.Task;
                throw fault;
            },
            options: new LifecycleGateOptions { Name = "syncer", Logger = logger });
        await gate.StartAsync().OrHang();

        runMayFail.SetResult();

        var logged = await logger.WaitFor(e => e.EventId == 2003).OrHang();
        logged.Level.Should().Be(LogLevel.Error);
        logged.Exception.Should().BeSameAs(fault);
        logged["Gate"].Should().Be("syncer");
        gate.State.Should().Be(RunFaulted);
        gate.Fault.Should().BeSameAs(fault);
        (await gate.Invoking(g => g.StopAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(fault);
        gate.State.Should().Be(Stopped);
        (await gate.StopAsync().OrHang()).Should().BeFalse("the fault is reported once, by the stop that tore the gate down");
    }

    [Fact]
    public async Task StopAsyncOnAGateThatNeverStarted_ReturnsFalseWithoutThrowing_AndDisposeCompletesWhenStopped()
    {
        // Ports the BackgroundService pain point: StopAsync on a service whose StartAsync never ran (a host that failed to
        // start an earlier service). The gate's stop before start "reports false"; disposing it completes WhenStopped
        // ("or is closed without ever having started") and cancels WhenRunning.
        var calls = new ConcurrentQueue<string>();
        var gate = new LifecycleGate(
            start: (_, _) =>
            {
                calls.Enqueue("start");
                return Task.CompletedTask;
            },
            run: _ =>
            {
                calls.Enqueue("run");
                return Task.CompletedTask;
            },
            stop: _ =>
            {
                calls.Enqueue("stop");
                return Task.CompletedTask;
            });
        var recorder = new TransitionRecorder(gate);

        (await gate.StopAsync().OrHang()).Should().BeFalse();
        gate.State.Should().Be(NotStarted);

        await gate.DisposeAsync().OrHang();
        await gate.WhenStopped.OrHang();
        gate.WhenRunning.IsCanceled.Should().BeTrue();
        calls.Should().BeEmpty();
        recorder.Events.Should().BeEmpty();
        await gate.Invoking(g => g.StartAsync()).Should().ThrowAsync<ObjectDisposedException>();
    }

    [Fact]
    public async Task AStopDuringStart_ReportsTheStartsOwnError_NotACancellation()
    {
        // Ports the BackgroundService pain point: a host stopped during startup reports an OperationCanceledException and
        // loses what the start itself failed with. The gate cancels the start's token; a start that then fails with its
        // own error reports that error (StartAsync, WhenRunning, the StartFailed event), releases what it acquired, and the
        // stop, whose start failed, "reports false" without calling the stop delegate.
        var own = new InvalidOperationException("migration interrupted half-way");
        var pool = new TrackedResource("pool");
        var startEntered = Bounded.NewGate();
        var stops = 0;
        var gate = new LifecycleGate(
            start: async (context, token) =>
            {
                context.Own(pool);
                startEntered.SetResult();
                try
                {
                    await Task.Delay(Timeout.Infinite, token);
                }
                catch (OperationCanceledException)
                {
                    throw own;
                }
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

        var stop = gate.StopAsync();

        (await start.Invoking(s => s.OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(own);
        (await whenRunning.Invoking(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(own);
        (await stop.OrHang()).Should().BeFalse();
        gate.State.Should().Be(StartFailed);
        gate.Fault.Should().BeSameAs(own);
        pool.IsDisposed.Should().BeTrue();
        stops.Should().Be(0);
        await recorder.WhenSeen(2).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, StartFailed));
        recorder.Events[1].Exception.Should().BeSameAs(own);
    }

    [Fact]
    public async Task AStartThatFailsOnItsOwnWithAnOperationCanceledException_BeforeTheStopCancelsIt_ReportsItsOwnError()
    {
        // Ports the BackgroundService pain point: a host stopped during startup reports a cancellation and hides the start's
        // own error, here an HttpClient timeout (TaskCanceledException) raised while the start's token was never
        // cancelled. The gate's rule for the run is that an OperationCanceledException "ended on its own" before its token
        // was cancelled is a fault; StartAsync promises "the start delegate's own exception is thrown to every caller", and
        // an OperationCanceledException only when "a stop cancelled the start". The stop's drive is held (the first thing it
        // does, on the pool, is read the gate's clock, which the test holds) so that the start fails before its token is
        // cancelled.
        var timedOut = new TaskCanceledException("the request timed out");
        var startEntered = Bounded.NewGate();
        var startMayFail = Bounded.NewGate();
        var startToken = Bounded.NewGate<CancellationToken>();
        using var held = new HeldClock();
        var gate = new LifecycleGate(
            start: async (_, token) =>
            {
                startToken.SetResult(token);
                startEntered.SetResult();
                await startMayFail.Task;
                token.IsCancellationRequested.Should().BeFalse("the stop has not cancelled the start yet");
                throw timedOut;
            },
            options: new LifecycleGateOptions { TimeProvider = held });
        var recorder = new TransitionRecorder(gate);
        var start = gate.StartAsync();
        await startEntered.Task.OrHang();

        var stop = gate.StopAsync();
        await held.Entered.OrHang(); // the stop's drive waits on the held clock, before it cancels the start
        startMayFail.SetResult();

        var thrown = (await start.Invoking(s => s.OrHang()).Should().ThrowAsync<Exception>()).Which;
        var startTokenCancelled = (await startToken.Task).IsCancellationRequested;
        held.Release();
        var stopped = await stop.OrHang();

        startTokenCancelled.Should().BeFalse("the start failed before the stop's drive ran");
        thrown.Should().BeSameAs(timedOut, "the start failed on its own; got {0}: {1}", thrown.GetType().Name, thrown.Message);
        gate.State.Should().Be(StartFailed);
        stopped.Should().BeFalse("the start failed");
        (await recorder.WhenReached(StartFailed).OrHang()).Exception.Should().BeSameAs(timedOut);
    }

    [Fact]
    public async Task ARunIgnoringItsToken_IsBoundedByShutdownTimeout_WhichNamesIt_AndNothingIsReleasedUnderIt()
    {
        // Ports the BackgroundService pain point: when ExecuteAsync ignores its token, the host gives up after
        // ShutdownTimeout and disposes the services while ExecuteAsync still runs. The gate's stop times out naming the
        // run, releases nothing under it, logs the timeout (2005), reports StopFailed with the timeout, and resumes later.
        var time = new ManualTimeProvider();
        var logger = new RecordingLogger();
        var runMayReturn = Bounded.NewGate();
        var client = new TrackedResource("client");
        var gate = new LifecycleGate(
            start: (context, _) => Task.FromResult(context.Own(client)),
            run: _ => runMayReturn.Task, // ignores its token
            options: new LifecycleGateOptions { TimeProvider = time, Logger = logger, ShutdownTimeout = TimeSpan.FromSeconds(5) });
        var recorder = new TransitionRecorder(gate);
        await gate.StartAsync().OrHang();

        var stop = gate.StopAsync();
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(5));

        var timeout = (await stop.Invoking(s => s.OrHang()).Should().ThrowAsync<LifecycleStopTimeoutException>()
            .WithMessage("'LifecycleGate': teardown step 'run' did not finish within 00:00:05. Nothing after it has been disposed; stop again to resume at this step.")).Which;
        timeout.Step.Should().Be("run");
        timeout.Name.Should().Be("LifecycleGate");
        timeout.Timeout.Should().Be(TimeSpan.FromSeconds(5));
        timeout.Should().BeAssignableTo<ShutdownTimeoutException>();
        client.IsDisposed.Should().BeFalse();
        gate.State.Should().Be(StopFailed);
        gate.Fault.Should().BeSameAs(timeout);
        await recorder.WhenSeen(4).OrHang();
        recorder.Transitions.Should().Equal((NotStarted, Starting), (Starting, Running), (Running, Stopping), (Stopping, StopFailed));
        recorder.Events[3].Exception.Should().BeSameAs(timeout);
        logger.Entries.Should().ContainSingle(e => e.EventId == 2005).Which["Step"].Should().Be("run");

        runMayReturn.SetResult();
        (await gate.StopAsync().OrHang()).Should().BeTrue();
        client.IsDisposed.Should().BeTrue();
        gate.State.Should().Be(Stopped);
    }

    [Fact]
    public async Task AnAbandonedRun_IsStillReported_ByTheStopThatCompletesTheTeardown_AfterAStepFailedOnce()
    {
        // Ports the BackgroundService pain point: the host abandons an ExecuteAsync that outlives ShutdownTimeout and says
        // nothing about it. With AbandonRunOnTimeout the gate releases the resources anyway and "the stop still reports
        // it"; when a stop step fails on the way, the first stop throws that step's exception as is, so the stop that
        // resumes and completes the teardown must report the abandoned run.
        var time = new ManualTimeProvider();
        var client = new TrackedResource("client");
        var flushes = 0;
        var gate = new LifecycleGate(
            start: (context, _) => Task.FromResult(context.Own(client)),
            run: _ => Bounded.NewGate().Task, // never returns
            stop: _ => Interlocked.Increment(ref flushes) == 1
                ? Task.FromException(new InvalidOperationException("flush failed"))
                : Task.CompletedTask,
            options: new LifecycleGateOptions { TimeProvider = time, ShutdownTimeout = TimeSpan.FromSeconds(5), AbandonRunOnTimeout = true });
        await gate.StartAsync().OrHang();

        var stop = gate.StopAsync();
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(5));
        await stop.Invoking(s => s.OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("flush failed");
        gate.State.Should().Be(StopFailed);
        client.IsDisposed.Should().BeFalse("the teardown stopped at the failing stop step");

        var abandoned = (await gate.Invoking(g => g.StopAsync().OrHang()).Should().ThrowAsync<LifecycleStopTimeoutException>()).Which;
        abandoned.RunAbandoned.Should().BeTrue();
        abandoned.Step.Should().Be("run");
        client.IsDisposed.Should().BeTrue();
        gate.State.Should().Be(Stopped);
        flushes.Should().Be(2);
    }

    [Fact]
    public async Task AStopStepThatHangs_TimesOutNamingIt_KeepsTheResourcesAfterIt_AndIsAwaitedNotCalledAgainOnResume()
    {
        // Ports the BackgroundService pain point: an IHostedService.StopAsync that hangs holds the host until
        // ShutdownTimeout, after which the container is disposed under it. The gate bounds the stop delegate by ShutdownTimeout,
        // names it ("stop"), disposes nothing registered before it, and a resumed stop awaits the same call.
        var time = new ManualTimeProvider();
        var flushMayFinish = Bounded.NewGate();
        var database = new TrackedResource("database");
        var flushes = 0;
        var gate = new LifecycleGate(
            start: (context, _) => Task.FromResult(context.Own(database)),
            stop: async _ =>
            {
                Interlocked.Increment(ref flushes);
                await flushMayFinish.Task;
            },
            options: new LifecycleGateOptions { TimeProvider = time, ShutdownTimeout = TimeSpan.FromSeconds(2) });
        await gate.StartAsync().OrHang();

        var stop = gate.StopAsync();
        await time.WhenTimersArmed(2).OrHang(); // the step's deadline token and the wait for it
        time.Advance(TimeSpan.FromSeconds(2));

        (await stop.Invoking(s => s.OrHang()).Should().ThrowAsync<LifecycleStopTimeoutException>()
            .WithMessage("'LifecycleGate': teardown step 'stop' did not finish within 00:00:02.*")).Which.Step.Should().Be("stop");
        database.IsDisposed.Should().BeFalse();
        gate.State.Should().Be(StopFailed);

        var resumed = gate.StopAsync();
        flushMayFinish.SetResult();
        (await resumed.OrHang()).Should().BeTrue();
        flushes.Should().Be(1);
        database.IsDisposed.Should().BeTrue();
    }

    [Fact]
    public async Task AStopDuringAStartThatIgnoresItsToken_IsBoundedByShutdownTimeout_AndTheStartsReturnFinishesTheStop()
    {
        // Not a port: BackgroundService's gap, closed. StopAsync there does not bound a StartAsync still in progress; the
        // gate's stop waits for a start that ignores its token at most ShutdownTimeout (LifecycleStopTimeoutException,
        // step "start"), and the start, when it returns, finishes the stop that was asked for.
        var time = new ManualTimeProvider();
        var startEntered = Bounded.NewGate();
        var startMayReturn = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: async (_, _) =>
            {
                startEntered.SetResult();
                await startMayReturn.Task; // ignores its token
            },
            options: new LifecycleGateOptions { TimeProvider = time, ShutdownTimeout = TimeSpan.FromSeconds(5) });
        var start = gate.StartAsync();
        await startEntered.Task.OrHang();

        var stop = gate.StopAsync();
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(5));

        (await stop.Invoking(s => s.OrHang()).Should().ThrowAsync<LifecycleStopTimeoutException>()).Which.Step.Should().Be("start");
        gate.State.Should().Be(Starting);

        startMayReturn.SetResult();
        (await start.OrHang()).Should().BeTrue();
        await gate.WhenStopped.OrHang();
        gate.State.Should().Be(Stopped);
    }

    /// <summary>
    /// The system clock, except that the first <see cref="GetTimestamp"/> (the first thing a gate's stop drive does, on
    /// the pool) waits until the test releases it.
    /// </summary>
    private sealed class HeldClock : TimeProvider, IDisposable
    {
        private readonly TaskCompletionSource _entered = Bounded.NewGate();
        private readonly ManualResetEventSlim _released = new();
        private int _calls;

        public Task Entered => _entered.Task;

        public void Release() => _released.Set();

        public void Dispose() => _released.Dispose();

        public override long GetTimestamp()
        {
            if (Interlocked.Increment(ref _calls) == 1)
            {
                _entered.SetResult();
                _released.Wait(Bounded.HangLimit);
            }

            return base.GetTimestamp();
        }
    }
}
