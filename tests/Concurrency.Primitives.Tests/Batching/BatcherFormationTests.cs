using System;
using System.Collections.Concurrent;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>Invariants 4, 6, 7 and 11 of src/Concurrency.Primitives/Batching/README.md: triggers, concurrency, back-pressure, cancellation, re-entrancy.</summary>
public sealed class BatcherFormationTests
{
    [Fact]
    public async Task TheTimeTrigger_IsArmedByTheFirstItem_AndNeverRestartedByLaterOnes()
    {
        var time = new ManualTimeProvider();
        var batches = new ConcurrentQueue<int[]>();
        var batcher = new Batcher<int, int>(
            (items, _) =>
            {
                batches.Enqueue(items.ToArray());
                return new ValueTask<System.Collections.Generic.IReadOnlyList<int>>(items.ToArray());
            },
            new BatcherOptions { MaxBatchSize = 100, MaxDelay = TimeSpan.FromSeconds(5), TimeProvider = time });

        var first = batcher.SubmitAsync(1).AsTask();
        time.Advance(TimeSpan.FromSeconds(3));
        var second = batcher.SubmitAsync(2).AsTask();
        time.Advance(TimeSpan.FromSeconds(1.9));
        batches.Should().BeEmpty("5 seconds have not passed since the first item");
        time.Advance(TimeSpan.FromSeconds(0.1));

        await Task.WhenAll(first, second).OrHang();
        batches.Should().ContainSingle().Which.Should().Equal(1, 2);
    }

    [Fact]
    public async Task AFullBatch_IsDispatchedAtOnce_InSubmitOrder()
    {
        var seen = Bounded.NewGate<int[]>();
        var batcher = new Batcher<int, int>(
            (items, _) =>
            {
                seen.TrySetResult(items.ToArray());
                return new ValueTask<System.Collections.Generic.IReadOnlyList<int>>(items.ToArray());
            },
            new BatcherOptions { MaxBatchSize = 3, MaxDelay = TimeSpan.FromHours(1) });

        var calls = new[] { 7, 3, 9 }.Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();

        (await seen.Task.OrHang()).Should().Equal(7, 3, 9);
        (await Task.WhenAll(calls).OrHang()).Should().Equal(7, 3, 9);
    }

    [Fact]
    public async Task AtMostMaxConcurrency_DispatchAtOnce()
    {
        var running = 0;
        var peak = 0;
        var release = Bounded.NewGate();
        var twoRunning = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                var now = Interlocked.Increment(ref running);
                InterlockedMax(ref peak, now);
                if (now == 2)
                {
                    twoRunning.TrySetResult();
                }

                await release.Task;
                Interlocked.Decrement(ref running);
                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, batch[i]);
                }
            },
            new BatcherOptions { MaxBatchSize = 1, MaxConcurrency = 2, MaxDelay = TimeSpan.Zero });

        var calls = Enumerable.Range(0, 6).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();
        await twoRunning.Task.OrHang();
        Volatile.Read(ref running).Should().Be(2);
        release.SetResult();

        (await Task.WhenAll(calls).OrHang()).Should().Equal(0, 1, 2, 3, 4, 5);
        peak.Should().Be(2);
    }

    [Fact]
    public async Task AFullQueue_MakesSubmittersWait_UntilADispatchTakesItems()
    {
        var release = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            EchoOnceReleased(release),
            new BatcherOptions { MaxBatchSize = 2, Capacity = 2, MaxDelay = TimeSpan.FromHours(1) });

        var dispatched = new[] { batcher.SubmitAsync(1).AsTask(), batcher.SubmitAsync(2).AsTask() }; // in the (blocked) dispatch
        var queued = new[] { batcher.SubmitAsync(3).AsTask(), batcher.SubmitAsync(4).AsTask() };      // fill the queue
        var waiting = batcher.SubmitAsync(5).AsTask();

        waiting.IsCompleted.Should().BeFalse("the queue is full");
        release.SetResult();

        (await Task.WhenAll(dispatched.Concat(queued)).OrHang()).Should().Equal(1, 2, 3, 4);
        await batcher.CloseAsync().OrHang(); // drains the waiting item's batch
        (await waiting.OrHang()).Should().Be(5);
    }

    [Fact]
    public async Task RoomLeftByItemsCutIntoABusyDispatch_IsCounted_BeforeASubmitIsMadeToWait()
    {
        // A dispatch loop that keeps every slot busy subtracts the items it cuts from the admission count lazily; a
        // submit that finds the count at Capacity must still get in while the queue itself has room.
        var release = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            EchoOnceReleased(release),
            new BatcherOptions { MaxBatchSize = 1, MaxConcurrency = 1, Capacity = 8, MaxDelay = TimeSpan.Zero, TimeProvider = new ManualTimeProvider() });

        var calls = Enumerable.Range(1, 9).Select(i => batcher.SubmitAsync(i).AsTask()).ToList(); // 1 in the dispatch, 2..9 queued
        var waiting = batcher.SubmitAsync(10).AsTask();

        batcher.DebuggerDisplay.Should().Be("8 admitted, 8 queued, 1 dispatching, 1 waiting for room", "item 9 found room, and item 10 is the first to wait for it");
        waiting.IsCompleted.Should().BeFalse();
        release.SetResult();
        calls.Add(waiting);
        (await Task.WhenAll(calls).OrHang()).Should().Equal(Enumerable.Range(1, 10));
    }

    [Fact]
    public async Task WaitingForRoom_IsCancellable()
    {
        var release = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            EchoOnceReleased(release),
            new BatcherOptions { MaxBatchSize = 1, Capacity = 1, MaxDelay = TimeSpan.Zero });
        var inDispatch = batcher.SubmitAsync(1).AsTask();
        var inQueue = batcher.SubmitAsync(2).AsTask();
        using var cancel = new CancellationTokenSource();

        var waiting = batcher.SubmitAsync(3, cancel.Token).AsTask();
        await cancel.CancelAsync();

        await waiting.Invoking(w => w.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        release.SetResult();
        (await Task.WhenAll(inDispatch, inQueue).OrHang()).Should().Equal(1, 2);
    }

    [Fact]
    public async Task CancellingOneWaiter_DoesNotAffectItsBatchMates_AndAnUndispatchedItemIsLeftOut()
    {
        var time = new ManualTimeProvider();
        var seen = Bounded.NewGate<int[]>();
        var batcher = new Batcher<int, int>(
            (items, _) =>
            {
                seen.TrySetResult(items.ToArray());
                return new ValueTask<System.Collections.Generic.IReadOnlyList<int>>(items.ToArray());
            },
            new BatcherOptions { MaxBatchSize = 10, MaxDelay = TimeSpan.FromSeconds(1), TimeProvider = time });
        using var cancel = new CancellationTokenSource();

        var kept1 = batcher.SubmitAsync(1).AsTask();
        var cancelled = batcher.SubmitAsync(2, cancel.Token).AsTask();
        var kept3 = batcher.SubmitAsync(3).AsTask();
        await cancel.CancelAsync();
        await cancelled.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        time.Advance(TimeSpan.FromSeconds(1));

        (await seen.Task.OrHang()).Should().Equal(1, 3);
        (await kept1.OrHang()).Should().Be(1);
        (await kept3.OrHang()).Should().Be(3);
    }

    [Fact]
    public async Task AnItemWhoseBoundPassesInTheQueue_IsReleased_AndNeverDispatched()
    {
        var time = new ManualTimeProvider();
        var dispatches = 0;
        var batcher = new Batcher<int, int>(
            (Batch<int, int> _, CancellationToken _) =>
            {
                Interlocked.Increment(ref dispatches);
                return default;
            },
            new BatcherOptions { MaxBatchSize = 10, MaxDelay = TimeSpan.FromMinutes(5), Timeout = TimeSpan.FromSeconds(30), TimeProvider = time });

        var call = batcher.SubmitAsync(1).AsTask();
        time.Advance(TimeSpan.FromSeconds(30));

        var timeout = (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which;
        timeout.WasDispatched.Should().BeFalse();
        time.Advance(TimeSpan.FromMinutes(5)); // the batch's MaxDelay: it would dispatch now, but it holds only the expired item
        await batcher.CloseAsync().OrHang();
        dispatches.Should().Be(0);
    }

    [Fact]
    public async Task ASubmitFromInsideItsOwnDispatch_IsRefused_InsteadOfDeadlocking()
    {
        Exception? reentrant = null;
        var batcher = default(Batcher<int, int>);
        batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                await Task.Yield(); // the check survives a hop to another thread
                reentrant = await Record.ExceptionAsync(() => batcher!.SubmitAsync(99).AsTask());
                batch.TrySetResult(0, 1);
            },
            new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero });

        (await batcher.SubmitAsync(1).AsTask().OrHang()).Should().Be(1);

        reentrant.Should().BeOfType<InvalidOperationException>().Which.Message.Should().Contain("from inside its own dispatch");
    }

    [Fact]
    public async Task ASubmitFromInsideAnotherBatchersDispatch_IsAllowed()
    {
        var inner = new Batcher<int, int>((items, _) => new ValueTask<System.Collections.Generic.IReadOnlyList<int>>(items.ToArray()), new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero });
        var outer = new Batcher<int, int>(
            async (batch, _) => batch.TrySetResult(0, await inner.SubmitAsync(batch[0] + 1)),
            new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero });

        (await outer.SubmitAsync(1).AsTask().OrHang()).Should().Be(2);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current && Interlocked.CompareExchange(ref target, value, current) != current)
        {
            current = Volatile.Read(ref target);
        }
    }

    /// <summary>A dispatch that waits for <paramref name="release"/>, then answers each item with itself.</summary>
    private static Func<Batch<int, int>, CancellationToken, ValueTask> EchoOnceReleased(TaskCompletionSource release) =>
        async (batch, _) =>
        {
            await release.Task;
            for (var i = 0; i < batch.Count; i++)
            {
                batch.TrySetResult(i, batch[i]);
            }
        };
}
