using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Conformance;

/// <summary>
/// dotnet/runtime System.Threading.Channels tests (BoundedChannelTests.cs and ChannelTestBase.cs) about writers waiting
/// for room, ported to <see cref="Batcher{TItem, TResult}"/>'s bounded queue (<see cref="BatcherOptions.Capacity"/>).
/// </summary>
/// <remarks>
/// Mapping: <c>Channel.CreateBounded(capacity)</c> is a batcher with <c>Capacity = capacity</c>, <c>MaxBatchSize = 1</c>, one
/// dispatch slot and <c>MaxDelay = 0</c>; <c>WriteAsync</c> is <c>SubmitAsync</c> (which also waits for the item's result);
/// "reading an item" is cutting it from the queue into a dispatch, which here happens when the previous dispatch returns —
/// each dispatch waits for a read permit the test hands out (<see cref="GatedReader.Read"/>). Capacity counts items queued
/// and not yet cut, as a channel counts items written and not yet read. A submit that waits for room cannot be told from
/// a queued one by its task (both wait for a result), so where it matters the ports tell them apart by shutting down:
/// with <see cref="BatcherShutdownMode.Drain"/> a queued item is still dispatched, a submit waiting for room fails with
/// <see cref="ClosedException"/> (Channels: <c>ChannelClosedException</c>). Completing the writer is <c>CloseAsync</c>. The
/// clock is manual: no Timeout passes.
/// The batcher has no TryWrite and no drop modes: those Channels tests are ported to the pump only.
/// </remarks>
public sealed class ChannelsBoundedWriterBatcherConformanceTests
{
    // Ports BoundedChannelTests.TryWrite_TryRead_Many_Wait: `capacity` writes are accepted without waiting, the next one
    // is not, and the reader sees exactly the accepted items, in order.
    [Theory]
    [InlineData(1)]
    [InlineData(10)]
    [InlineData(10000)]
    public async Task CapacitySubmitsAreAccepted_TheNextWaitsForRoom_AndTheAcceptedOnesAreDispatchedInOrder(int capacity)
    {
        var (batcher, reader) = NewBatcher(capacity);
        var running = batcher.SubmitAsync(-1).AsTask(); // holds the one dispatch slot; the queue is empty again
        await reader.WhenDispatched(1).OrHang();

        var accepted = Enumerable.Range(0, capacity).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();
        var waiting = batcher.SubmitAsync(capacity).AsTask();

        var shutdown = batcher.CloseAsync();
        reader.ReadAll();
        await shutdown.OrHang();

        (await running.OrHang()).Should().Be(-1);
        (await Task.WhenAll(accepted).OrHang()).Should().Equal(Enumerable.Range(0, capacity), "accepted items drain at shutdown");
        await waiting.Invoking(w => w.OrHang()).Should().ThrowAsync<ClosedException>("it was waiting for room, not accepted");
        reader.Dispatched.Should().Equal(new[] { -1 }.Concat(Enumerable.Range(0, capacity)));
    }

    // Ports BoundedChannelTests.CancelPendingWrite_Reading_DataTransferredFromCorrectWriter: a waiting write is cancelled,
    // a second write waits after it; the read that frees room takes the *second* writer's item, and the cancelled one is
    // never read.
    [Fact]
    public async Task CancellingAWaitingSubmit_LeavesTheRoomToTheNextWaiter_AndItsItemIsNeverDispatched()
    {
        var (batcher, reader) = NewBatcher(capacity: 1);
        var running = batcher.SubmitAsync(0).AsTask();
        await reader.WhenDispatched(1).OrHang();
        var queued = batcher.SubmitAsync(42).AsTask();
        using var cts = new CancellationTokenSource();

        var write1 = batcher.SubmitAsync(43, cts.Token).AsTask();
        write1.IsCompleted.Should().BeFalse("the queue is full");
        await cts.CancelAsync();
        var write2 = batcher.SubmitAsync(44).AsTask();

        reader.ReadAll();
        (await running.OrHang()).Should().Be(0);
        (await queued.OrHang()).Should().Be(42);
        (await write2.OrHang()).Should().Be(44);
        var cancelled = await write1.Invoking(w => w.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        cancelled.Which.CancellationToken.Should().Be(cts.Token);
        reader.Dispatched.Should().Equal(0, 42, 44);
    }

    // Ports BoundedChannelTests.SingleProducerConsumer_ConcurrentReadWrite_WithBufferedCapacity_Success, its delivery half:
    // one producer writes 10000 items while the reader runs concurrently, waiting for room when the bound is reached; every
    // item is read exactly once. (A submit also waits for its result, so the producer issues every submit without awaiting
    // it: only the room wait can hold it back.) The order half is the next test.
    [Theory]
    [InlineData(1)]
    [InlineData(10)]
    [InlineData(10000)]
    public async Task OneProducerWithTheDispatchRunning_EveryItemIsDispatchedOnce_AndAnsweredToItsOwnCaller(int capacity)
    {
        const int NumItems = 10000;
        var (batcher, reader) = NewBatcher(capacity);
        reader.ReadAll();

        var calls = await Task.Run(() => Enumerable.Range(0, NumItems).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray()).OrHang();

        (await Task.WhenAll(calls).OrHang()).Should().Equal(Enumerable.Range(0, NumItems));
        reader.Dispatched.Order().Should().Equal(Enumerable.Range(0, NumItems), "every item is dispatched exactly once");
    }

    // Ports BoundedChannelTests.SingleProducerConsumer_ConcurrentReadWrite_WithBufferedCapacity_Success, its order half: the
    // reader sees the items in the order the one producer wrote them. Run with one item per dispatch, and with batches
    // (a reader taking up to MaxBatchSize items at a time), where the batcher's own docs promise "Items keep their submit
    // order within a batch". Observed: submits that waited for room are admitted out of order (capacity 10: 0..10, then
    // 65, 75, 85, ...; with batches, whole batches in reverse submit order, e.g. 7778,7775,7774,...).
    [Theory]
    [InlineData(1, 1)]
    [InlineData(10, 1)]
    [InlineData(10, 10)]
    [InlineData(64, 16)]
    public async Task OneProducerWithTheDispatchRunning_ItemsAreDispatchedInSubmitOrder(int capacity, int maxBatchSize)
    {
        const int NumItems = 10000;
        var batches = new ConcurrentQueue<int[]>();
        var batcher = new Batcher<int, int>(
            (items, _) =>
            {
                var copy = items.ToArray();
                batches.Enqueue(copy);
                return new ValueTask<IReadOnlyList<int>>(copy);
            },
            new BatcherOptions { MaxBatchSize = maxBatchSize, Capacity = capacity, MaxDelay = TimeSpan.Zero, TimeProvider = new ManualTimeProvider() });

        var calls = await Task.Run(() => Enumerable.Range(0, NumItems).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray()).OrHang();

        (await Task.WhenAll(calls).OrHang()).Should().Equal(Enumerable.Range(0, NumItems));
        batches.Should().OnlyContain(b => b.SequenceEqual(b.OrderBy(i => i)), "items keep their submit order within a batch");
        batches.SelectMany(b => b).Should().Equal(Enumerable.Range(0, NumItems));
    }

    // Ports BoundedChannelTests.ManyProducerConsumer_ConcurrentReadWrite_WithBufferedCapacity_Success: ten writers share
    // the items 1..10000, waiting for room as needed; the last one completes the channel; every item is read once. Each
    // writer awaits its submits before it counts itself done, as a Channels writer awaits its WriteAsync.
    [Theory]
    [InlineData(1)]
    [InlineData(10)]
    [InlineData(10000)]
    public async Task ManyProducersWaitingForRoom_EveryItemIsDispatchedAndAnsweredExactlyOnce(int capacity)
    {
        const int NumWriters = 10;
        const int NumItems = 10000;
        var (batcher, reader) = NewBatcher(capacity);
        reader.ReadAll();
        var remainingItems = NumItems;
        var remainingWriters = NumWriters;
        long answeredTotal = 0;

        var writers = Enumerable.Range(0, NumWriters).Select(_ => Task.Run(async () =>
        {
            var mine = new List<Task<int>>();
            while (true)
            {
                var value = Interlocked.Decrement(ref remainingItems);
                if (value < 0)
                {
                    break;
                }

                mine.Add(batcher.SubmitAsync(value + 1).AsTask());
            }

            Interlocked.Add(ref answeredTotal, (await Task.WhenAll(mine)).Sum(r => (long)r));
            if (Interlocked.Decrement(ref remainingWriters) == 0)
            {
                await batcher.CloseAsync();
            }
        })).ToArray();

        await Task.WhenAll(writers).OrHang();
        answeredTotal.Should().Be(NumItems * (NumItems + 1L) / 2);
        reader.Dispatched.Should().HaveCount(NumItems);
        reader.Dispatched.Sum(i => (long)i).Should().Be(NumItems * (NumItems + 1L) / 2);
    }

    // Ports BoundedChannelTests.WaitToWriteAsync_AfterFullThenRead_ReturnsTrue. The batcher has no WaitToWriteAsync (a wait
    // for room that writes nothing); a waiting SubmitAsync is a reservation, so one read lets exactly one waiter in
    // (Channels completes both WaitToWriteAsync, which only say "there may be room"). Asserted: each freed place goes to
    // the oldest waiter, so the two waiters are dispatched in the order they waited.
    [Fact]
    public async Task EachFreedPlace_GoesToTheOldestWaitingSubmit()
    {
        var (batcher, reader) = NewBatcher(capacity: 1);
        var calls = new List<Task<int>> { batcher.SubmitAsync(0).AsTask() };
        await reader.WhenDispatched(1).OrHang();
        calls.Add(batcher.SubmitAsync(1).AsTask()); // fills the queue
        calls.Add(batcher.SubmitAsync(2).AsTask()); // waits
        calls.Add(batcher.SubmitAsync(3).AsTask()); // waits

        for (var read = 1; read <= 3; read++)
        {
            reader.Read();
            await reader.WhenDispatched(read + 1).OrHang();
            reader.Dispatched.Should().Equal(Enumerable.Range(0, read + 1), "read {0} freed one place, and the oldest waiter took it", read);
        }

        reader.Read();
        (await Task.WhenAll(calls).OrHang()).Should().Equal(0, 1, 2, 3);
    }

    // Ports ChannelTestBase.Complete_WithException_PropagatesToExistingWriter: a writer waiting on a full channel fails when
    // the channel completes (Channels: ChannelClosedException; here ClosedException, documented for a submit to a batcher
    // that is closed or closing), while the items already accepted are still read — in Drain mode. In FailPending mode
    // the accepted, undispatched items fail too (documented, with ClosedException), and the running dispatch is still awaited.
    [Theory]
    [InlineData(BatcherShutdownMode.Drain)]
    [InlineData(BatcherShutdownMode.FailPending)]
    public async Task ShuttingDown_FailsAWaitingSubmitWithClosed_AndDrainsOrFailsTheQueuedItemsByShutdownMode(BatcherShutdownMode mode)
    {
        var (batcher, reader) = NewBatcher(capacity: 1, mode);
        var running = batcher.SubmitAsync(0).AsTask();
        await reader.WhenDispatched(1).OrHang();
        var queued = batcher.SubmitAsync(1).AsTask();
        var waiting = batcher.SubmitAsync(42).AsTask();
        waiting.IsCompleted.Should().BeFalse("the queue is full");

        var shutdown = batcher.CloseAsync();

        await waiting.Invoking(w => w.OrHang()).Should().ThrowAsync<ClosedException>();
        reader.ReadAll();
        await shutdown.OrHang();
        (await running.OrHang()).Should().Be(0);
        if (mode == BatcherShutdownMode.Drain)
        {
            (await queued.OrHang()).Should().Be(1);
            reader.Dispatched.Should().Equal(0, 1);
        }
        else
        {
            await queued.Invoking(q => q.OrHang()).Should().ThrowAsync<ClosedException>();
            reader.Dispatched.Should().Equal(0);
        }
    }

    // Ports ChannelTestBase.WriteAsync_AfterComplete_ThrowsException and Complete_WithException_PropagatesToNewWriter: a
    // write after completion throws an InvalidOperationException (Channels: ChannelClosedException; here ClosedException,
    // which is one, and ObjectDisposedException, also one, only once the batcher is disposed). No completion exception is
    // carried: CloseAsync takes none.
    [Fact]
    public async Task ASubmitAfterShutdown_ThrowsClosed_AnInvalidOperationException()
    {
        var (batcher, reader) = NewBatcher(capacity: 1);
        await batcher.CloseAsync().OrHang();

        await batcher.Invoking(b => b.SubmitAsync(42).AsTask().OrHang()).Should().ThrowAsync<ClosedException>();
        await batcher.Invoking(b => b.SubmitAsync(42).AsTask().OrHang()).Should().ThrowAsync<InvalidOperationException>();
        await batcher.DisposeAsync();
        await batcher.Invoking(b => b.SubmitAsync(42).AsTask().OrHang()).Should().ThrowAsync<ObjectDisposedException>();
        reader.Dispatched.Should().BeEmpty();
    }

    // Ports ChannelTestBase.WaitToWriteAsync_AfterComplete_SynchronouslyCompletes: after completion, a write completes at
    // once (here: already faulted with ClosedException) rather than waiting.
    [Fact]
    public async Task ASubmitAfterShutdown_CompletesSynchronously()
    {
        var (batcher, _) = NewBatcher(capacity: 1);
        await batcher.CloseAsync().OrHang();

        var write = batcher.SubmitAsync(42).AsTask();

        write.IsCompleted.Should().BeTrue();
        write.Exception!.InnerException.Should().BeOfType<ClosedException>();
    }

    // Ports ChannelTestBase.ManyWriteAsync_ThenManyTryRead_Success: 2000 writes to a channel of capacity 1 (all but the
    // first wait), then 2000 reads: the reads see the writes in the order they were issued, and every write completes.
    [Fact]
    public async Task ManyWaitingSubmits_AreDispatchedInTheOrderTheyWereIssued()
    {
        const int NumItems = 2000;
        var (batcher, reader) = NewBatcher(capacity: 1);
        var first = batcher.SubmitAsync(-1).AsTask();
        await reader.WhenDispatched(1).OrHang();

        var writers = Enumerable.Range(0, NumItems).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();

        reader.ReadAll();
        (await Task.WhenAll(writers).OrHang()).Should().Equal(Enumerable.Range(0, NumItems));
        (await first.OrHang()).Should().Be(-1);
        reader.Dispatched.Should().Equal(new[] { -1 }.Concat(Enumerable.Range(0, NumItems)));
    }

    // Ports ManyWriteAsync_ThenManyTryRead_Success's hand-over (ChannelTestBase): in Channels a read moves the oldest
    // blocked writer's item into the freed place under the channel's lock, so a write issued later queues behind every
    // blocked writer. Here the dispatch of item 2 runs inline, on the thread that just cut item 2 and granted the freed
    // place to the waiting submit 3; it issues submit 5 (from a context outside the dispatch, so it is not refused as
    // re-entrant). Submit 5 must not overtake the waiting submits 3 and 4.
    [Fact]
    public async Task ASubmitIssuedWhileAWaitingSubmitHoldsTheFreedPlace_DoesNotOvertakeTheWaiters()
    {
        var outside = ExecutionContext.Capture()!;
        var dispatched = new ConcurrentQueue<int>();
        using var releaseFirst = new ManualResetEventSlim();
        Task<int>? late = null;
        Batcher<int, int>? batcher = null;
        batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                dispatched.Enqueue(batch[0]);
                switch (batch[0])
                {
                    case 1:
                        releaseFirst.Wait(Bounded.HangLimit); // a gate: returns synchronously, so item 2 runs inline next
                        break;
                    case 2:
                        ExecutionContext.Run(outside, _ => late = batcher!.SubmitAsync(5).AsTask(), null);
                        break;
                }

                batch.TrySetResult(0, batch[0]);
                return default;
            },
            new BatcherOptions { MaxBatchSize = 1, Capacity = 1, MaxConcurrency = 1, MaxDelay = TimeSpan.Zero, TimeProvider = new ManualTimeProvider() });

        var calls = new[] { 1, 2, 3, 4 }.Select(i => batcher.SubmitAsync(i).AsTask()).ToList(); // 1 runs, 2 queued, 3 and 4 wait
        releaseFirst.Set();

        (await Task.WhenAll(calls).OrHang()).Should().Equal(1, 2, 3, 4);
        (await late!.OrHang()).Should().Be(5);
        dispatched.Should().Equal(1, 2, 3, 4, 5);
    }

    // Ports ChannelTestBase.Precancellation_Writing_ReturnsImmediately: a write with an already-cancelled token completes at
    // once and writes nothing — whether or not there is room (here also with a full queue: it must not take a place in
    // line). The documented part is asserted here; the task's status is asserted by the next test.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ASubmitWithAnAlreadyCancelledToken_FailsAtOnceWithThatToken_AndDispatchesNothing(bool queueFull)
    {
        var (batcher, reader) = NewBatcher(capacity: 1);
        var running = batcher.SubmitAsync(0).AsTask();
        await reader.WhenDispatched(1).OrHang();
        var queued = queueFull ? batcher.SubmitAsync(1).AsTask() : null;
        var cancelled = new CancellationToken(canceled: true);

        var write = batcher.SubmitAsync(42, cancelled).AsTask();

        write.IsCompleted.Should().BeTrue();
        var thrown = await FluentActions.Awaiting(() => write).Should().ThrowAsync<OperationCanceledException>();
        thrown.Which.CancellationToken.Should().Be(cancelled);
        var after = batcher.SubmitAsync(2).AsTask(); // waits (queue full) or is queued: either way it is served
        reader.ReadAll();
        (await running.OrHang()).Should().Be(0);
        if (queued is not null)
        {
            (await queued.OrHang()).Should().Be(1);
        }

        (await after.OrHang()).Should().Be(2);
        reader.Dispatched.Should().Equal(queueFull ? new[] { 0, 1, 2 } : new[] { 0, 2 });
    }

    // Ports ChannelTestBase.Precancellation_Writing_ReturnsImmediately's status check: Channels asserts the returned task
    // IsCanceled, as the .NET task-based asynchronous pattern asks of a method given an already-cancelled token. The pump's
    // PostAsync, and this batcher's own submit once it waited for room, both end Canceled.
    [Fact]
    public void ASubmitWithAnAlreadyCancelledToken_EndsCanceled_NotFaulted()
    {
        var (batcher, _) = NewBatcher(capacity: 1);

        var write = batcher.SubmitAsync(42, new CancellationToken(canceled: true)).AsTask();

        write.IsCanceled.Should().BeTrue();
    }

    // Ports ChannelTestBase.ReadAsync_Canceled_WriteAsyncCompletesNextReader, mirrored to the writer side (the brief's
    // "cancellation does not lose the room for the next one"): five waiting writes are cancelled one after another; then
    // seven write-and-read rounds each go through.
    [Fact]
    public async Task CancelledWaitingSubmits_LoseNoRoom_LaterSubmitsAllGoThrough()
    {
        var (batcher, reader) = NewBatcher(capacity: 1);
        var running = batcher.SubmitAsync(-1).AsTask();
        await reader.WhenDispatched(1).OrHang();
        var queued = batcher.SubmitAsync(-2).AsTask();

        for (var i = 0; i < 5; i++)
        {
            using var cts = new CancellationTokenSource();
            var write = batcher.SubmitAsync(100 + i, cts.Token).AsTask();
            await cts.CancelAsync();
            await write.Invoking(w => w.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        }

        reader.ReadAll();
        (await running.OrHang()).Should().Be(-1);
        (await queued.OrHang()).Should().Be(-2);
        for (var i = 0; i < 7; i++)
        {
            (await batcher.SubmitAsync(i).AsTask().OrHang()).Should().Be(i);
        }

        reader.Dispatched.Should().Equal(new[] { -1, -2 }.Concat(Enumerable.Range(0, 7)));
    }

    // Ports ChannelTestBase.WriteAsync_AwaitThenGetResult_Throws: a write that waited on a full channel, once awaited,
    // throws InvalidOperationException if its result is read again. The batcher documents the same for SubmitAsync
    // ("Reading its result a second time throws InvalidOperationException"). Observed: the submit that waited for room
    // returns its result again.
    [Fact]
    public Task ReadingTheResultOfASubmitThatWaitedForRoomASecondTime_ThrowsInvalidOperation() => ReadResultTwiceAsync(waitsForRoom: true);

    // Ports ChannelTestBase.WriteAsync_AwaitThenGetResult_Throws on a channel with room (the Channels test uses a full one):
    // the submit's value task is backed by the pooled item, and a second read throws as documented.
    [Fact]
    public Task ReadingTheResultOfASubmitThatFoundRoomASecondTime_ThrowsInvalidOperation() => ReadResultTwiceAsync(waitsForRoom: false);

    private static async Task ReadResultTwiceAsync(bool waitsForRoom)
    {
        var (batcher, reader) = NewBatcher(capacity: 1);
        var earlier = new List<Task<int>>();
        if (waitsForRoom)
        {
            earlier.Add(batcher.SubmitAsync(0).AsTask());
            await reader.WhenDispatched(1).OrHang();
            earlier.Add(batcher.SubmitAsync(1).AsTask()); // fills the queue
        }
        else
        {
            reader.ReadAll();
        }

#pragma warning disable CA2012, VSTHRD002 // the point of this test: a value task consumed twice, the second time synchronously
        var write = batcher.SubmitAsync(2);
        reader.ReadAll();

        (await write).Should().Be(2);

        write.Invoking(w => w.GetAwaiter().GetResult()).Should().Throw<InvalidOperationException>("SubmitAsync's docs: reading its result a second time throws");
#pragma warning restore CA2012, VSTHRD002
        (await Task.WhenAll(earlier).OrHang()).Should().Equal(waitsForRoom ? new[] { 0, 1 } : Array.Empty<int>());
    }

    private static (Batcher<int, int> Batcher, GatedReader Reader) NewBatcher(int capacity, BatcherShutdownMode mode = BatcherShutdownMode.Drain)
    {
        var reader = new GatedReader();
        var batcher = new Batcher<int, int>(
            reader.DispatchAsync,
            new BatcherOptions
            {
                MaxBatchSize = 1,
                Capacity = capacity,
                MaxConcurrency = 1,
                MaxDelay = TimeSpan.Zero,
                ShutdownMode = mode,
                TimeProvider = new ManualTimeProvider(),
            });
        return (batcher, reader);
    }

    /// <summary>
    /// The reading side: a dispatch that records its items, then waits for a read permit before answering them (each with
    /// its own item), so that the next item is cut from the queue only when the test reads.
    /// </summary>
    private sealed class GatedReader
    {
        private readonly SemaphoreSlim _reads = new(0);
        private readonly object _gate = new();
        private readonly List<int> _dispatched = new();
        private readonly List<(int Count, TaskCompletionSource Signal)> _waiters = new();
        private volatile bool _open;

        public IReadOnlyList<int> Dispatched
        {
            get
            {
                lock (_gate)
                {
                    return _dispatched.ToList();
                }
            }
        }

        /// <summary>Lets the current dispatch return, so that the next queued item is cut ("read").</summary>
        public void Read() => _reads.Release();

        /// <summary>Reads everything from now on: every dispatch answers at once.</summary>
        public void ReadAll()
        {
            _open = true;
            _reads.Release(1_000_000);
        }

        public Task WhenDispatched(int count)
        {
            lock (_gate)
            {
                if (_dispatched.Count >= count)
                {
                    return Task.CompletedTask;
                }

                var signal = Bounded.NewGate();
                _waiters.Add((count, signal));
                return signal.Task;
            }
        }

        public async ValueTask DispatchAsync(Batch<int, int> batch, CancellationToken cancellationToken)
        {
            var items = new int[batch.Count];
            for (var i = 0; i < items.Length; i++)
            {
                items[i] = batch[i];
            }

            List<TaskCompletionSource> ready;
            lock (_gate)
            {
                _dispatched.AddRange(items);
                ready = _waiters.Where(w => _dispatched.Count >= w.Count).Select(w => w.Signal).ToList();
                _waiters.RemoveAll(w => ready.Contains(w.Signal));
            }

            foreach (var signal in ready)
            {
                signal.TrySetResult();
            }

            if (!_open)
            {
                await _reads.WaitAsync(CancellationToken.None);
            }

            for (var i = 0; i < items.Length; i++)
            {
                batch.TrySetResult(i, items[i]);
            }
        }
    }
}
