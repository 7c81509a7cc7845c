using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using static Concurrency.Primitives.Tests.TestSupport.BatcherHandlers;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>
/// Invariant 8 of src/Concurrency.Primitives/Batching/README.md, and what a finished batcher leaves behind: a draining
/// close waits for the queued items, and once it is done no timer is left on the clock (the MaxDelay timer, the deadline
/// sweep, and each room waiter's own deadline timer all go), and nothing reads as still dispatching.
/// </summary>
public sealed class BatcherShutdownTimerTests
{
    /// <summary>Guards the drain's completion condition: a close in Drain mode does not complete while accepted items are still queued.</summary>
    [Fact]
    public async Task ADrainingClose_CompletesOnlyAfterTheQueuedItemsWereDispatched()
    {
        var entered = Bounded.NewGate();
        var release = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                entered.TrySetResult();
                await release.Task;
                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, batch[i]);
                }
            },
            new BatcherOptions { MaxBatchSize = 10, MaxDelay = TimeSpan.FromHours(1) });
        var calls = Enumerable.Range(1, 3).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();

        var close = batcher.CloseAsync();

        close.IsCompleted.Should().BeFalse("three accepted items are still queued: the drain dispatches them first");
        await entered.Task.OrHang();
        close.IsCompleted.Should().BeFalse("their dispatch is still running");
        release.SetResult();
        await close.OrHang();
        (await Task.WhenAll(calls).OrHang()).Should().Equal(1, 2, 3);
    }

    /// <summary>
    /// Guards the timers' lifetime: the deadline sweep brought forward for a dispatch's bound is the same timer, moved
    /// (not a second one), and the drain disposes it and the MaxDelay timer.
    /// </summary>
    [Fact]
    public async Task TheDrain_DisposesTheMaxDelayTimerAndTheSweep_AfterTheSweepWasBroughtForwardForADispatch()
    {
        var time = new ManualTimeProvider();
        var batcher = new Batcher<int, int>(
            Echo,
            new BatcherOptions { MaxBatchSize = 2, MaxDelay = TimeSpan.FromHours(1), Timeout = TimeSpan.FromSeconds(30), DispatchTimeout = TimeSpan.FromSeconds(2), TimeProvider = time });

        var first = batcher.SubmitAsync(1).AsTask();  // arms the MaxDelay timer (1 h) and the sweep (its bound, 30 s)
        time.ArmedTimers.Should().Be(2);
        var second = batcher.SubmitAsync(2).AsTask(); // full: cut now, its dispatch bounded at 2 s: the sweep is brought forward
        time.ArmedTimers.Should().Be(2, "the sweep's timer was moved, not joined by a second one");
        (await Task.WhenAll(first, second).OrHang()).Should().Equal(1, 2);

        await batcher.CloseAsync().OrHang();

        time.ArmedTimers.Should().Be(0, "nothing is left to batch or to time out");
    }

    /// <summary>
    /// Guards each room waiter's own deadline timer: it goes with its caller however that caller ends — cancelled while
    /// waiting, answered with a result, or failed by the dispatch — so that after the drain no timer is left.
    /// </summary>
    [Fact]
    public async Task ARoomWaitersOwnDeadlineTimer_IsDisposed_WhetherItCancelsIsAnsweredOrIsFailed()
    {
        var time = new ManualTimeProvider();
        var entered = Bounded.NewGate();
        var release = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                if (batch[0] == 1)
                {
                    entered.TrySetResult();
                    await release.Task;
                }

                if (batch[0] == 3)
                {
                    batch.TrySetException(0, new InvalidOperationException("three"));
                }
                else
                {
                    batch.TrySetResult(0, batch[0]);
                }
            },
            new BatcherOptions
            {
                MaxBatchSize = 1,
                Capacity = 1,
                MaxConcurrency = 1,
                MaxDelay = TimeSpan.Zero,
                Timeout = TimeSpan.FromSeconds(30),
                DispatchTimeout = TimeSpan.FromHours(1),
                TimeProvider = time,
            });
        using var cancel = new CancellationTokenSource();

        var running = batcher.SubmitAsync(1).AsTask();              // dispatched, and held
        await entered.Task.OrHang();
        var queued = batcher.SubmitAsync(2).AsTask();               // fills the queue
        var failed = batcher.SubmitAsync(3).AsTask();               // these three wait for room, each with its own deadline timer
        var cancelled = batcher.SubmitAsync(4, cancel.Token).AsTask();
        var answered = batcher.SubmitAsync(5).AsTask();
        time.ArmedTimers.Should().Be(4, "the deadline sweep, and the own deadline of each caller waiting for room");

        await cancel.CancelAsync();
        await cancelled.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        time.ArmedTimers.Should().Be(3, "the caller that cancelled took its timer with it");

        release.SetResult();
        (await Task.WhenAll(running, queued, answered).OrHang()).Should().Equal(1, 2, 5);
        (await failed.Invoking(c => c.OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Message.Should().Be("three");
        await batcher.CloseAsync().OrHang();

        time.ArmedTimers.Should().Be(0, "the answered and the failed caller's timers went with their answers, and the sweep with the drain");
    }

    /// <summary>
    /// Guards the debugger display and the dispatching count it shares with the shutdown logs: an idle batcher shows no
    /// room waiters; a batcher whose dispatch finished shows none dispatching; a closed one says so.
    /// </summary>
    [Fact]
    public async Task DebuggerDisplay_OfAnIdleBatcher_AndOfOneClosedAfterADispatch_ShowsNothingDispatching()
    {
        var batcher = new Batcher<int, int>(Echo, new BatcherOptions { MaxBatchSize = 2, MaxDelay = TimeSpan.FromHours(1) });

        batcher.DebuggerDisplay.Should().Be("0 admitted, 0 queued, 0 dispatching");
        (await Task.WhenAll(batcher.SubmitAsync(1).AsTask(), batcher.SubmitAsync(2).AsTask()).OrHang()).Should().Equal(1, 2);
        await batcher.CloseAsync().OrHang(); // the loop has finished the batch

        batcher.DebuggerDisplay.Should().Be("0 admitted, 0 queued, 0 dispatching, shutting down");
    }

    /// <summary>Guards the cut of a batch whose every caller gave up before it: nothing is dispatched, and nothing is left reading as dispatching.</summary>
    [Fact]
    public async Task ABatchWhoseOnlyCallerGaveUpBeforeTheCut_IsNeverDispatched_NorCountedAsDispatching()
    {
        var dispatches = 0;
        var batcher = new Batcher<int, int>(
            (Batch<int, int> _, CancellationToken _) =>
            {
                Interlocked.Increment(ref dispatches);
                return default;
            },
            new BatcherOptions { MaxBatchSize = 10, MaxDelay = TimeSpan.FromHours(1) });
        using var cancel = new CancellationTokenSource();

        var gone = batcher.SubmitAsync(1, cancel.Token).AsTask();
        await cancel.CancelAsync();
        await gone.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        await batcher.CloseAsync().OrHang(); // the drain cuts the cancelled item, and leaves it out

        Volatile.Read(ref dispatches).Should().Be(0);
        batcher.DebuggerDisplay.Should().Be("0 admitted, 0 queued, 0 dispatching, shutting down");
    }

}
