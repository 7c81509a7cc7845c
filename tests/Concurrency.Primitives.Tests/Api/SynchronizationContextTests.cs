using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Api;

/// <summary>
/// No call of the library captures its caller's <see cref="SynchronizationContext"/>: a UI or classic ASP.NET thread that
/// blocks on one of them (a synchronous shutdown) must see it complete. The context here never runs what is posted to it,
/// as a UI thread blocked in <c>Wait</c> never does.
/// </summary>
public sealed class SynchronizationContextTests
{
    [Fact]
    public void LifecycleGate_StartStopCloseAndDispose_CompleteUnderABlockedContext()
    {
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask, run: token => Task.Delay(Timeout.Infinite, token), options: new LifecycleGateOptions { AllowRestart = true });
        var other = new LifecycleGate(start: (_, _) => Task.CompletedTask);

        var posted = BlockedContext.BlockOn(() => new Task[]
        {
            Checked(gate.StartAsync()),
            Checked(gate.StopAsync()),
            Checked(gate.StartAsync()),
            gate.CloseAsync(),
            Checked(other.StartAsync()),
            other.DisposeAsync().AsTask(),
        });

        posted.Should().Be(0, "nothing was posted back to the caller's context");
    }

    [Fact]
    public void OrderedTeardown_ExecuteAndDispose_CompleteUnderABlockedContext()
    {
        var teardown = new OrderedTeardown();
        teardown.Add(_ => Task.CompletedTask, "step");
        var disposed = new OrderedTeardown();
        disposed.Add(new TrackedResource("client"));

        var posted = BlockedContext.BlockOn(() => new[] { teardown.ExecuteAsync(), disposed.DisposeAsync().AsTask() });

        posted.Should().Be(0);
    }

    [Fact]
    public void TaskTracker_GoRunWaitCloseAndDispose_CompleteUnderABlockedContext()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { MaxConcurrency = 1 });
        var disposed = new TaskTracker();

        var posted = BlockedContext.BlockOn(() => new[]
        {
            tracker.Go(_ => Task.CompletedTask),
            tracker.RunAsync(_ => Task.CompletedTask),
            tracker.WaitAsync(),
            tracker.CloseAsync(),
            disposed.DisposeAsync().AsTask(),
        });

        posted.Should().Be(0);
    }

    [Fact]
    public void Batcher_SubmitCloseAndDispose_CompleteUnderABlockedContext()
    {
        var batcher = new Batcher<int, int>(
            (items, _) => new ValueTask<IReadOnlyList<int>>(items),
            new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero, Capacity = 1 });
        var disposed = new Batcher<int, int>((items, _) => new ValueTask<IReadOnlyList<int>>(items));

        var posted = BlockedContext.BlockOn(() => new Task[]
        {
            batcher.SubmitAsync(1).AsTask(),
            batcher.SubmitAsync(2).AsTask(),
            Ended(batcher.SubmitAsync(3).AsTask()), // waits for room; the close then refuses it
            batcher.CloseAsync(),
            disposed.DisposeAsync().AsTask(),
        });

        posted.Should().Be(0);
    }

    [Fact]
    public void PeerEventPump_PostCloseAndDispose_CompleteUnderABlockedContext()
    {
        var pump = new PeerEventPump<string, string>(new RecordingPeerHandler<string>(), new PeerEventPumpOptions { Capacity = 1 });
        var disposed = new PeerEventPump<string, string>(new RecordingPeerHandler<string>());

        var posted = BlockedContext.BlockOn(() =>
        {
            var peer = pump.Connect("p");
            peer.MarkReady();
            return new Task[]
            {
                peer.PostAsync("m1").AsTask(),
                peer.PostAsync("m2").AsTask(), // may wait for room
                pump.CloseAsync(),
                disposed.DisposeAsync().AsTask(),
            };
        });

        posted.Should().Be(0);
    }

    /// <summary>
    /// Each disposal here must really wait (the work it waits for is released from the pool after the call returned), so
    /// its continuations run after an await: one that captured the blocked context would never run.
    /// </summary>
    [Fact]
    public async Task Disposals_ThatMustWait_CompleteUnderABlockedContext()
    {
        var tracker = new TaskTracker();
        var lease = tracker.Register("request");

        var runGate = Bounded.NewGate();
        var gate = new LifecycleGate(run: _ => runGate.Task, stop: _ => Task.CompletedTask);
        await gate.StartAsync().OrHang();

        var dispatchGate = Bounded.NewGate();
        var dispatched = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                dispatched.TrySetResult();
                await dispatchGate.Task;
                batch.TrySetResult(0, batch[0]);
            },
            new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero });
        var submitted = batcher.SubmitAsync(1).AsTask();
        await dispatched.Task.OrHang();

        var handlerGate = Bounded.NewGate();
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler);
        handler.Hold = handlerGate.Task;
        pump.Connect("p").MarkReady();
        await handler.FirstCallEntered.OrHang();

        var teardown = new OrderedTeardown();
        var stepGate = Bounded.NewGate();
        teardown.Add(_ => stepGate.Task, "flush");

        var posted = BlockedContext.BlockOn(() =>
        {
            var disposals = new[]
            {
                tracker.DisposeAsync().AsTask(),
                gate.DisposeAsync().AsTask(),
                batcher.DisposeAsync().AsTask(),
                pump.DisposeAsync().AsTask(),
                teardown.DisposeAsync().AsTask(),
            };
            disposals.Should().OnlyContain(d => !d.IsCompleted, "each waits for work released below");
            _ = Task.Run(() =>
            {
                lease.Dispose();
                runGate.SetResult();
                dispatchGate.SetResult();
                handlerGate.SetResult();
                stepGate.SetResult();
            });
            return disposals;
        });

        posted.Should().Be(0);
        (await submitted.OrHang()).Should().Be(1);
    }

    /// <summary>
    /// A start delegate may leave a context on the pool thread it runs on (WinForms installs one on a thread that creates
    /// a control) and return before its work is done: the gate's continuation after the start must not be posted to it.
    /// </summary>
    [Fact]
    public async Task AStartThatLeavesAContextOnItsThread_DoesNotCaptureTheGatesContinuationAfterTheStart()
    {
        var context = new BlockedContext();
        var entered = Bounded.NewGate();
        var held = Bounded.NewGate();
        var gate = new LifecycleGate(start: (_, _) =>
        {
            SynchronizationContext.SetSynchronizationContext(context);
            entered.SetResult(); // its continuation is queued: by the time it runs, the gate is awaiting the held start
            return held.Task;
        });

        var started = gate.StartAsync();
        await entered.Task.OrHang();
        held.SetResult();

        (await started.OrHang()).Should().BeTrue("the gate finished its start on the pool, not on the context the start left behind");
        context.Posts.Should().Be(0);
    }

    /// <summary>
    /// The same context left by a start that completes at once: the gate then observes its run from that thread, and a
    /// run that faults later must still be observed (the gate reports <see cref="LifecycleState.RunFaulted"/>).
    /// </summary>
    [Fact]
    public async Task AStartThatLeavesAContextOnItsThread_DoesNotCaptureTheRunsObservation()
    {
        var context = new BlockedContext();
        var failRun = Bounded.NewGate();
        var faulted = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: (_, _) =>
            {
                SynchronizationContext.SetSynchronizationContext(context);
                return Task.CompletedTask;
            },
            run: async _ =>
            {
                await failRun.Task.ConfigureAwait(false);
                throw new InvalidOperationException("the run failed");
            });
        gate.StateChanged += (_, change) =>
        {
            if (change.Current == LifecycleState.RunFaulted)
            {
                faulted.TrySetResult();
            }
        };

        (await gate.StartAsync().OrHang()).Should().BeTrue();
        failRun.SetResult();

        await faulted.Task.OrHang();
        gate.Fault.Should().BeOfType<InvalidOperationException>();
        context.Posts.Should().Be(0);
    }

    private static Task Checked(Task<bool> task) => task;

    /// <summary>Completes when <paramref name="task"/> completes, whatever its outcome.</summary>
    private static Task Ended(Task task) => task.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
}
