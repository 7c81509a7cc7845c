using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Lifecycle;

/// <summary>Invariants 1, 2, 7 and 8 of src/Concurrency.Primitives/Lifecycle/README.md: the state machine, one start per cycle, restart rules, the fast path.</summary>
public sealed class LifecycleGateStartTests
{
    [Fact]
    public async Task ConcurrentStarters_ShareOneStart_AndNoCallerIsBlocked()
    {
        var starts = 0;
        var release = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: async (_, _) =>
            {
                Interlocked.Increment(ref starts);
                await release.Task;
            });

        var callers = Enumerable.Range(0, 32).Select(_ => gate.StartAsync()).ToArray();

        callers.Should().OnlyContain(t => !t.IsCompleted, "every call returned at once, none blocked behind the start");
        gate.State.Should().Be(LifecycleState.Starting);
        release.SetResult();
        var results = await Task.WhenAll(callers).OrHang();
        results.Count(started => started).Should().Be(1, "exactly one call started the gate");
        Volatile.Read(ref starts).Should().Be(1);
        gate.State.Should().Be(LifecycleState.Running);
    }

    [Fact]
    public async Task OneCallerCancellingItsWait_CancelsNeitherTheStartNorTheOthers()
    {
        var startToken = CancellationToken.None;
        var release = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: async (_, token) =>
            {
                startToken = token;
                await release.Task;
            });
        using var impatient = new CancellationTokenSource();

        var first = gate.StartAsync(impatient.Token);
        var second = gate.StartAsync();
        await impatient.CancelAsync();

        await first.Invoking(t => t.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        second.IsCompleted.Should().BeFalse();
        gate.State.Should().Be(LifecycleState.Starting);
        release.SetResult();
        await second.OrHang();
        startToken.IsCancellationRequested.Should().BeFalse();
        gate.State.Should().Be(LifecycleState.Running);
    }

    [Fact]
    public async Task StartAsync_OnARunningGate_ReturnsTheSameCompletedTask_WithoutAllocating()
    {
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask);
        await gate.StartAsync().OrHang();
        var first = gate.StartAsync();

        var before = GC.GetAllocatedBytesForCurrentThread();
        var second = gate.StartAsync();
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        second.Should().BeSameAs(first);
        second.IsCompletedSuccessfully.Should().BeTrue();
        (await second).Should().BeFalse("this call did not start the gate");
        allocated.Should().Be(0);
    }

    [Fact]
    public async Task StartFailure_MovesToStartFailed_ReachesEveryWaiter_AndStartingAgainRetries()
    {
        var attempts = 0;
        var gate = new LifecycleGate(
            start: (_, _) => Interlocked.Increment(ref attempts) == 1
                ? Task.FromException(new InvalidOperationException("database unreachable"))
                : Task.CompletedTask);

        await gate.Invoking(g => g.StartAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("database unreachable");
        gate.State.Should().Be(LifecycleState.StartFailed);
        await gate.WhenRunning.Invoking(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>();

        (await gate.StartAsync().OrHang()).Should().BeTrue();
        gate.State.Should().Be(LifecycleState.Running);
        await gate.WhenRunning.OrHang();
    }

    [Fact]
    public async Task FailedStart_ReleasesWhatItAcquired_AndNeverCallsTheStopDelegate()
    {
        var stopCalls = 0;
        var pool = new TrackedResource("pool");
        var gate = new LifecycleGate(
            start: (context, _) =>
            {
                context.Own(pool);
                throw new InvalidOperationException("half-way");
            },
            stop: _ =>
            {
                Interlocked.Increment(ref stopCalls);
                return Task.CompletedTask;
            });

        await gate.Invoking(g => g.StartAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>();

        pool.IsDisposed.Should().BeTrue();
        (await gate.StopAsync().OrHang()).Should().BeFalse("a gate whose start failed was never started");
        stopCalls.Should().Be(0);
    }

    [Fact]
    public async Task Restart_IsRefusedByDefault_WithAMessageThatSaysWhatToDo()
    {
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask);
        await gate.StartAsync().OrHang();
        await gate.StopAsync().OrHang();

        await gate.Invoking(g => g.StartAsync()).Should().ThrowAsync<InvalidOperationException>().WithMessage("*AllowRestart*");
        gate.State.Should().Be(LifecycleState.Stopped);
    }

    [Fact]
    public async Task Restart_WhenAllowed_RunsANewCycle()
    {
        var starts = 0;
        var stops = 0;
        var gate = new LifecycleGate(
            start: (_, _) =>
            {
                starts++;
                return Task.CompletedTask;
            },
            stop: _ =>
            {
                stops++;
                return Task.CompletedTask;
            },
            options: new LifecycleGateOptions { AllowRestart = true });

        for (var cycle = 0; cycle < 3; cycle++)
        {
            (await gate.StartAsync().OrHang()).Should().BeTrue();
            await gate.WhenRunning.OrHang();
            (await gate.StopAsync().OrHang()).Should().BeTrue();
            await gate.WhenStopped.OrHang();
        }

        (starts, stops).Should().Be((3, 3));
    }

    [Fact]
    public async Task StateChanged_ReportsEveryTransitionInOrder()
    {
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask, run: token => Task.Delay(Timeout.Infinite, token));
        var seen = new System.Collections.Concurrent.ConcurrentQueue<(LifecycleState, LifecycleState)>();
        var stoppedRaised = Bounded.NewGate();
        gate.StateChanged += (_, e) =>
        {
            seen.Enqueue((e.Previous, e.Current));
            if (e.Current == LifecycleState.Stopped)
            {
                stoppedRaised.SetResult();
            }
        };

        await gate.StartAsync().OrHang();
        await gate.StopAsync().OrHang();
        await stoppedRaised.Task.OrHang(); // events are raised on their own work item, after the callers are released

        seen.Should().Equal(
            (LifecycleState.NotStarted, LifecycleState.Starting),
            (LifecycleState.Starting, LifecycleState.Running),
            (LifecycleState.Running, LifecycleState.Stopping),
            (LifecycleState.Stopping, LifecycleState.Stopped));
    }

    [Fact]
    public async Task AThrowingStateChangedHandler_DoesNotBreakTheGate()
    {
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask);
        gate.StateChanged += (_, _) => throw new InvalidOperationException("handler");

        await gate.StartAsync().OrHang();
        await gate.StopAsync().OrHang();

        gate.State.Should().Be(LifecycleState.Stopped);
    }

    [Fact]
    public async Task AThrowingStateChangedHandler_HidesNoTransitionFromTheHandlersAfterIt()
    {
        var logger = new RecordingLogger();
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask, options: new LifecycleGateOptions { Logger = logger });
        var seen = new System.Collections.Concurrent.ConcurrentQueue<LifecycleState>();
        var stoppedRaised = Bounded.NewGate();
        gate.StateChanged += (_, _) => throw new InvalidOperationException("first handler");
        gate.StateChanged += (_, e) =>
        {
            seen.Enqueue(e.Current);
            if (e.Current == LifecycleState.Stopped)
            {
                stoppedRaised.SetResult();
            }
        };

        await gate.StartAsync().OrHang();
        await gate.StopAsync().OrHang();
        await stoppedRaised.Task.OrHang();

        seen.Should().Equal(LifecycleState.Starting, LifecycleState.Running, LifecycleState.Stopping, LifecycleState.Stopped);
        logger.Entries.Where(e => e.EventId == 2008).Should().HaveCount(4, "each throw of the first handler is logged");
    }

    [Fact]
    public async Task AStoppedHandlerThatWaitsForStopAsync_DoesNotDeadlock()
    {
        // Guava's testListenerDoesntDeadlockOnStopAndWaitFromTerminated: once the state reads Stopped, a stop completes at once.
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask, run: token => Task.Delay(Timeout.Infinite, token));
        var handlerReturned = Bounded.NewGate<bool>();
        gate.StateChanged += (_, e) =>
        {
            if (e.Current == LifecycleState.Stopped)
            {
#pragma warning disable VSTHRD002 // a synchronous wait inside the handler is the point of the test
                handlerReturned.TrySetResult(gate.StopAsync().Wait(Bounded.HangLimit));
#pragma warning restore VSTHRD002
            }
        };
        await gate.StartAsync().OrHang();

        (await gate.StopAsync().OrHang()).Should().BeTrue();
        (await handlerReturned.Task.OrHang()).Should().BeTrue("the handler's StopAsync completed instead of waiting for the stop that raised it");
    }

    [Fact]
    public async Task WhenRunning_AfterAStop_RefersToTheNextStart()
    {
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask, options: new LifecycleGateOptions { AllowRestart = true });
        await gate.StartAsync().OrHang();
        gate.WhenRunning.IsCompletedSuccessfully.Should().BeTrue();

        await gate.StopAsync().OrHang();

        gate.State.Should().Be(LifecycleState.Stopped);
        var nextRun = gate.WhenRunning;
        nextRun.IsCompleted.Should().BeFalse("the gate is not running; WhenRunning waits for the next start");
        await gate.StartAsync().OrHang();
        await nextRun.OrHang();
    }

    [Fact]
    public async Task WhenRunning_AfterAStop_WithoutRestart_IsCancelled_BecauseNoStartWillCome()
    {
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask);
        await gate.StartAsync().OrHang();

        await gate.StopAsync().OrHang();

        gate.WhenRunning.IsCanceled.Should().BeTrue();
    }

    [Fact]
    public async Task StartAsync_WithAnAlreadyCancelledToken_StartsNothing()
    {
        var starts = 0;
        var gate = new LifecycleGate(
            start: (_, _) =>
            {
                Interlocked.Increment(ref starts);
                return Task.CompletedTask;
            });

        await gate.Invoking(g => g.StartAsync(new CancellationToken(canceled: true))).Should().ThrowAsync<OperationCanceledException>();

        gate.State.Should().Be(LifecycleState.NotStarted);
        starts.Should().Be(0);
    }

    [Fact]
    public async Task DisposeAsync_StopsTheGate_ThenRefusesStarts()
    {
        var resource = new TrackedResource("client");
        var gate = new LifecycleGate(start: (context, _) => Task.FromResult(context.Own(resource)));
        await gate.StartAsync().OrHang();

        await gate.DisposeAsync();

        gate.State.Should().Be(LifecycleState.Stopped);
        resource.IsDisposed.Should().BeTrue();
        await gate.Invoking(g => g.StartAsync()).Should().ThrowAsync<ObjectDisposedException>();
        await gate.DisposeAsync(); // idempotent
    }

    [Fact]
    public async Task DisposeAsync_OfAGateNeverStarted_CompletesWhenStopped_AndCancelsWhenRunning()
    {
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask);

        await gate.DisposeAsync();

        await gate.WhenStopped.OrHang();
        gate.WhenRunning.IsCanceled.Should().BeTrue();
    }
}
