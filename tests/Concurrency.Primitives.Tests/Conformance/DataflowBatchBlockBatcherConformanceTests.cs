using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Conformance;

// dotnet/runtime TPL Dataflow tests ported to Batcher<TItem, TResult>: BatchBlockTests.cs, and the parts of
// ActionBlockTests.cs about completion, faults, cancellation and bounded capacity
// (src/libraries/System.Threading.Tasks.Dataflow/tests/Dataflow/).
//
// Mapping: a BatchBlock<T>(batchSize) feeding an ActionBlock<T[]> is a batcher with MaxBatchSize = batchSize whose
// dispatch is the action; Post/SendAsync is SubmitAsync (which also waits for the item's answer); OutputCount, the
// batches made and not yet received, has no counterpart, and is read through Count, the items accepted and not yet cut
// into a batch; BoundedCapacity is Capacity (which counts queued items only, not those being dispatched);
// MaxDegreeOfParallelism is MaxConcurrency. TriggerBatch has two counterparts: MaxDelay passing on the manual clock (a
// partial batch is cut), and MaxDelay = 0 (a partial batch is cut as soon as a dispatch slot is free). Complete() is
// CloseAsync with BatcherShutdownMode.Drain (buffered items are still dispatched); Fault(exception) and the block's
// cancellation token, which drop buffered items, are the closest to CloseAsync with FailPending (the dropped items'
// callers fail with ClosedException); a block's Completion is the batcher's Completion, which never faults. The
// dispatches here are held on gates the test opens (HeldBatchDispatch); the clock moves only when a test advances it.
//
// Ported (upstream test -> test here):
//   BatchBlock TestGreedyFromPosts, TestTriggerBatch_Nop           -> FullBatchesAreCutByTheSubmitThatFillsThem_...
//   BatchBlock TestTriggerBatch_VaryingBatchSizes, _NonGreedy (its order part), _Nop
//                                                                   -> MaxDelayPassing_CutsThePartialBatchInSubmitOrder_...
//   BatchBlock TestTriggerBatch_NonGreedy (trigger as MaxDelay = 0) -> WithMaxDelayZero_ALoneItemIsDispatchedAtOnce_...
//   BatchBlock TestCtor, TestCompletionTask, TestCompletionWithBufferedItems, TestPost; ActionBlock TestPost,
//     TestCompletionTask                                            -> ClosingWithDrain_DispatchesTheBufferedPartialBatch_...
//   BatchBlock TestArgumentExceptions; ActionBlock TestCtor (arguments) -> AnInvalidMaxBatchSize_OrACapacityBelowIt_...
//   BatchBlock TestProducerConsumer; ActionBlock TestBasicMessageProcessing, TestOrderMaintained
//                                                                   -> AProducerRacingTheDispatch_...
//   BatchBlock TestBoundedReceives; ActionBlock TestNonGreedy, TestInputCount
//                                                                   -> WithCapacity_SubmitsPastItWaitForRoom_...
//   ActionBlock TestParallelExecution                               -> AtMostMaxConcurrencyDispatchesRunAtOnce_...
//   ActionBlock TestFaulting (its three trials)                     -> ADispatchThatFaults_FailsEveryUnansweredCaller_...
//     DIFFERENCE BY DESIGN: ActionBlock faults the whole block and declines later posts; the batcher fails only that
//     batch's unanswered callers (BatchDispatchException around the dispatch's exception) and goes on.
//   ActionBlock TestOperationCanceledExceptionsIgnored              -> ADispatchThatThrowsOperationCanceled_...
//     DIFFERENCE BY DESIGN: ActionBlock drops the message silently; the batcher answers its caller with a
//     BatchDispatchException (a caller must never wait for ever, nor mistake it for its own cancellation).
//   BatchBlock TestPrecancellation, TestTriggerBatch_Cancellation; ActionBlock TestPrecanceledToken
//                                                                   -> ACancelledCaller_IsLeftOutOfItsBatch_...
//     The block's token cancels the block; the batcher's token cancels only its own caller.
//   BatchBlock TestBoundedCapacityFromSends (a waiting send released) -> ACallerWaitingForRoom_CancelsItsWait_...
//   BatchBlock TestFaultingAndCancellation; ActionBlock TestFault    -> ClosingWithFailPending_FailsTheBufferedItems_...
//   ActionBlock TestReleasingOfPostponedMessages; BatchBlock TestBoundedCapacityFromSends (every send completes)
//                                                                   -> DisposingWhileSubmitsWaitForRoom_...
//
// Skipped (no counterpart in the batcher's contract):
//   BatchBlock TestToString; ActionBlock TestToString: no ToString/NameFormat contract.
//   BatchBlock TestOfferMessage; ActionBlock TestOfferMessage, TestConsumeToAccept: no OfferMessage/consume-to-accept protocol.
//   BatchBlock TestLinkToOptions, TestBatchingFromSubsetOfSources: no LinkTo; items come only from SubmitAsync.
//   BatchBlock TestReceives: no pull side (TryReceive, TryReceiveAll, filters): batches are pushed to the dispatch.
//   BatchBlock TestReserveReleaseConsume, TestReleaseOnReserveException: no reservation protocol.
//   BatchBlock TestNonGreedy, TestMultipleNonGreedyFromSources, TestNonGreedyFailedConsume, TestNonGreedyLostMessages,
//     TestTriggerBatch_NonGreedyEmpty: no non-greedy mode (an item is accepted up to Capacity, or waits for room).
//   BatchBlock TestMaxNumberOfGroups, TestTriggerBatch_MaxNumberOfGroups: no limit on the number of batches.
//   BatchBlock TestFaultyScheduler; ActionBlock TestFaultyScheduler, TestSchedulerUsage: no TaskScheduler option.
//   ActionBlock TestNullReturnedTasks: a null task from the dispatch has no documented meaning.
//   ActionBlock TestExceptionDataStorage: no Exception.Data entry; the nearest, BatchDispatchException.Index and
//     BatchSize, is asserted by ADispatchThatFaults_FailsEveryUnansweredCaller_....
public sealed class DataflowBatchBlockBatcherConformanceTests
{
    private static readonly TimeSpan MaxDelay = TimeSpan.FromMilliseconds(10);

    // Ports BatchBlock TestGreedyFromPosts: posting Batches * batchSize items makes a batch of batchSize consecutive items
    // each time one fills (OutputCount == (i + 1) / batchSize); here, the submit that fills a batch cuts it at once, so
    // Count (accepted, not yet cut) is (i + 1) % batchSize after each submit, with the clock never moving. And the
    // TestTriggerBatch_Nop part: MaxDelay passing over an empty queue dispatches no batch.
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(5)]
    public async Task FullBatchesAreCutByTheSubmitThatFillsThem_EachOfConsecutiveItems_WithoutWaitingForMaxDelay(int batchSize)
    {
        const int Batches = 3;
        var (batcher, dispatch, time) = NewBatcher(batchSize, maxConcurrency: Batches);

        var calls = new List<Task<int>>();
        for (var i = 0; i < Batches * batchSize; i++)
        {
            calls.Add(batcher.SubmitAsync(i).AsTask());
            batcher.Count.Should().Be((i + 1) % batchSize, "a full batch is cut by the submit that fills it (item {0})", i);
        }

        var entered = new List<int[]>();
        for (var b = 0; b < Batches; b++)
        {
            entered.Add((await dispatch.NextAsync()).Items);
        }

        dispatch.OpenAll();
        (await Task.WhenAll(calls).OrHang()).Should().Equal(Enumerable.Range(0, Batches * batchSize));
        entered.OrderBy(b => b[0]).Should().BeEquivalentTo(
            Enumerable.Range(0, Batches).Select(b => Enumerable.Range(b * batchSize, batchSize).ToArray()),
            o => o.WithStrictOrdering());

        time.Advance(MaxDelay);
        await batcher.CloseAsync().OrHang();
        dispatch.Batches.Should().HaveCount(Batches, "MaxDelay passing over an empty queue dispatches no empty batch");
    }

    // Ports BatchBlock TestTriggerBatch_VaryingBatchSizes (batch sizes 2 and 5, one or batchSize - 1 items queued before
    // the trigger) and the order part of TestTriggerBatch_NonGreedy (9 of 10): nothing is cut before the trigger, the
    // trigger (MaxDelay passing) cuts exactly the queued items in submit order, and then batchSize more items make one
    // full batch without any trigger. Ends with TestTriggerBatch_Nop: a trigger over an empty queue makes nothing.
    [Theory]
    [InlineData(2, 1)]
    [InlineData(5, 1)]
    [InlineData(5, 4)]
    [InlineData(10, 9)]
    public async Task MaxDelayPassing_CutsThePartialBatchInSubmitOrder_ThenAFullBatchGoesWithoutIt(int batchSize, int queuedBeforeTrigger)
    {
        var (batcher, dispatch, time) = NewBatcher(batchSize);
        var partial = Enumerable.Range(1, queuedBeforeTrigger).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();
        batcher.Count.Should().Be(queuedBeforeTrigger, "nothing is cut before MaxDelay passes");

        time.Advance(MaxDelay);
        var triggered = await dispatch.NextAsync();
        triggered.Items.Should().Equal(Enumerable.Range(1, queuedBeforeTrigger));

        var full = Enumerable.Range(100, batchSize).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();
        batcher.Count.Should().Be(batchSize, "the one dispatch slot is busy");
        triggered.Release.SetResult();
        var next = await dispatch.NextAsync();
        next.Items.Should().Equal(Enumerable.Range(100, batchSize), "a full batch is cut without the clock moving");
        next.Release.SetResult();

        (await Task.WhenAll(partial).OrHang()).Should().Equal(Enumerable.Range(1, queuedBeforeTrigger));
        (await Task.WhenAll(full).OrHang()).Should().Equal(Enumerable.Range(100, batchSize));
        time.Advance(MaxDelay);
        await batcher.CloseAsync().OrHang();
        dispatch.Batches.Should().HaveCount(2, "a trigger over an empty queue dispatches nothing");
    }

    // Ports BatchBlock TestTriggerBatch_NonGreedy with the trigger as MaxDelay = 0: a lone item is dispatched at once as a
    // batch of one, though the batch could hold four, and the clock never moves; items submitted while the only dispatch
    // slot is busy wait in the queue and are cut, in submit order and up to MaxBatchSize, as soon as the slot is free.
    [Fact]
    public async Task WithMaxDelayZero_ALoneItemIsDispatchedAtOnce_AndItemsQueuedWhileTheSlotIsBusyFormTheNextBatches()
    {
        var (batcher, dispatch, _) = NewBatcher(maxBatchSize: 4, maxDelay: TimeSpan.Zero);

        var lone = batcher.SubmitAsync(0).AsTask();
        var first = await dispatch.NextAsync();
        first.Items.Should().Equal(0);
        var queued = Enumerable.Range(1, 5).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();
        batcher.Count.Should().Be(5, "the one dispatch slot is busy: nothing is cut");

        first.Release.SetResult();
        var second = await dispatch.NextAsync();
        second.Items.Should().Equal(1, 2, 3, 4);
        second.Release.SetResult();
        var third = await dispatch.NextAsync();
        third.Items.Should().Equal(5);
        third.Release.SetResult();

        (await lone.OrHang()).Should().Be(0);
        (await Task.WhenAll(queued).OrHang()).Should().Equal(1, 2, 3, 4, 5);
    }

    // Ports BatchBlock TestCompletionWithBufferedItems (three items in a block of five, then Complete: one batch of three,
    // then Completion completes), TestCtor and TestCompletionTask (a new block holds nothing and its Completion is pending
    // until it is completed), and TestPost (a completed block declines a post): a submit after the close fails at once
    // with ClosedException.
    [Fact]
    public async Task ClosingWithDrain_DispatchesTheBufferedPartialBatch_ThenCompletes_AndRefusesLaterSubmits()
    {
        var (batcher, dispatch, _) = NewBatcher(maxBatchSize: 5);
        dispatch.OpenAll();
        batcher.Count.Should().Be(0);
        batcher.Completion.IsCompleted.Should().BeFalse();

        var calls = Enumerable.Range(0, 3).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();
        batcher.Count.Should().Be(3);
        await batcher.CloseAsync().OrHang();

        (await Task.WhenAll(calls).OrHang()).Should().Equal(0, 1, 2);
        dispatch.Batches.Should().BeEquivalentTo(new[] { new[] { 0, 1, 2 } }, o => o.WithStrictOrdering());
        batcher.Count.Should().Be(0);
        batcher.Completion.IsCompletedSuccessfully.Should().BeTrue();
        var late = batcher.SubmitAsync(3).AsTask();
        late.IsCompleted.Should().BeTrue("a closed batcher refuses at once");
        await late.Invoking(l => l.OrHang()).Should().ThrowAsync<ClosedException>();
    }

    // Ports BatchBlock TestArgumentExceptions: a negative batch size, and a bounded capacity below the batch size, are
    // refused with ArgumentOutOfRangeException (here naming the option).
    [Theory]
    [InlineData(-1, 4096, "MaxBatchSize")]
    [InlineData(2, 1, "Capacity")]
    public void AnInvalidMaxBatchSize_OrACapacityBelowIt_IsRefusedWithAMessageNamingTheOption(int maxBatchSize, int capacity, string option)
    {
        var create = () => new Batcher<int, int>(BatcherHandlers.Echo, new BatcherOptions { MaxBatchSize = maxBatchSize, Capacity = capacity });

        create.Should().Throw<ArgumentOutOfRangeException>().WithMessage($"*{option}*");
    }

    // Ports BatchBlock TestProducerConsumer (unbounded, 2 and 3 capacity; batch sizes 1 and 2) with ActionBlock
    // TestBasicMessageProcessing and TestOrderMaintained: a producer on its own thread submits while an asynchronous
    // dispatch runs; every item is dispatched exactly once, in submit order, each caller gets its own answer, and the
    // queue never holds more than Capacity. Upstream also asserts that every batch holds exactly batchSize items; that
    // relies on its final Complete flushing the rest, and a close here would fail the submits still waiting for room, so
    // MaxDelay is 0 (a partial batch is cut whenever the slot is free) and only "at most MaxBatchSize" is asserted.
    [Theory]
    [InlineData(null, 1)]
    [InlineData(null, 2)]
    [InlineData(2, 1)]
    [InlineData(2, 2)]
    [InlineData(3, 1)]
    [InlineData(3, 2)]
    public async Task AProducerRacingTheDispatch_GetsEveryItemDispatchedOnceInSubmitOrder_WithinMaxBatchSizeAndCapacity(int? capacity, int batchSize)
    {
        const int Messages = 200;
        var batches = new ConcurrentQueue<int[]>();
        var queueSizes = new ConcurrentQueue<int>();
        Batcher<int, int>? batcher = null;
        batcher = new Batcher<int, int>(
            async ValueTask<IReadOnlyList<int>> (items, _) =>
            {
                var copy = items.ToArray();
                batches.Enqueue(copy);
                queueSizes.Enqueue(batcher!.Count);
                await Task.Yield(); // the slot stays busy while the producer goes on
                return copy;
            },
            new BatcherOptions { MaxBatchSize = batchSize, Capacity = capacity, MaxDelay = TimeSpan.Zero, TimeProvider = new ManualTimeProvider() });

        var calls = await Task.Run(() => Enumerable.Range(0, Messages).Select(i =>
        {
            var call = batcher.SubmitAsync(i).AsTask();
            queueSizes.Enqueue(batcher.Count);
            return call;
        }).ToArray()).OrHang();

        (await Task.WhenAll(calls).OrHang()).Should().Equal(Enumerable.Range(0, Messages));
        await batcher.CloseAsync().OrHang();
        batches.SelectMany(b => b).Should().Equal(Enumerable.Range(0, Messages), "every item is dispatched once, in submit order");
        batches.Should().OnlyContain(b => b.Length >= 1 && b.Length <= batchSize);
        queueSizes.Should().OnlyContain(n => n <= (capacity ?? int.MaxValue), "the queue never holds more than Capacity");
    }

    // Ports BatchBlock TestBoundedReceives and ActionBlock TestNonGreedy (BoundedCapacity 1: of ten sends, each completes
    // only after the one before it was processed) with TestInputCount: with Capacity and MaxBatchSize 2 and the
    // dispatch held, ten submits leave one batch running, two items queued (Count) and six waiting for room; each batch
    // the dispatch finishes lets the next one be cut and the two oldest waiters in, so the batches come in submit order.
    [Fact]
    public async Task WithCapacity_SubmitsPastItWaitForRoom_AndEachCutAdmitsTheOldestWaiters()
    {
        var (batcher, dispatch, _) = NewBatcher(maxBatchSize: 2, capacity: 2);

        var calls = Enumerable.Range(0, 10).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();

        for (var step = 0; step < 5; step++)
        {
            var entered = await dispatch.NextAsync();
            entered.Items.Should().Equal(2 * step, 2 * step + 1);
            batcher.Count.Should().Be(step < 4 ? 2 : 0, "Capacity items are queued; the others wait for room, uncounted (step {0})", step);
            calls.Skip(2 * step).Should().OnlyContain(c => !c.IsCompleted, "nothing past the running batch is answered yet");
            entered.Release.SetResult();
            (await Task.WhenAll(calls[2 * step], calls[(2 * step) + 1]).OrHang()).Should().Equal(2 * step, 2 * step + 1);
        }
    }

    // Ports ActionBlock TestParallelExecution (MaxDegreeOfParallelism 2: two bodies meet at a barrier): with MaxConcurrency
    // 2, two dispatches run at once, and a third item is cut only when one of them returns.
    [Fact]
    public async Task AtMostMaxConcurrencyDispatchesRunAtOnce_AndTheNextItemWaitsForAFreeSlot()
    {
        var (batcher, dispatch, _) = NewBatcher(maxBatchSize: 1, maxConcurrency: 2, maxDelay: TimeSpan.Zero);

        var calls = Enumerable.Range(0, 4).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();
        var a = await dispatch.NextAsync();
        var b = await dispatch.NextAsync();
        a.Items.Concat(b.Items).Should().BeEquivalentTo(new[] { 0, 1 });
        dispatch.MaxRunning.Should().Be(2, "both dispatches are running together");
        batcher.Count.Should().Be(2, "both slots are busy: items 2 and 3 are not cut");

        a.Release.SetResult();
        var c = await dispatch.NextAsync();
        c.Items.Should().Equal(2);
        batcher.Count.Should().Be(1);
        dispatch.OpenAll();

        (await Task.WhenAll(calls).OrHang()).Should().Equal(0, 1, 2, 3);
        dispatch.MaxRunning.Should().Be(2, "never more than MaxConcurrency dispatches at once");
    }

    // Ports ActionBlock TestFaulting, its three trials: the body throws synchronously (0), returns a faulted task (1), or
    // faults asynchronously (2). Here the dispatch answers the first item of its batch of three and then faults: that
    // caller keeps its result, the two unanswered callers each get a BatchDispatchException (their own Index, the batch's
    // size) around the very exception the dispatch threw. DIFFERENCE BY DESIGN: ActionBlock faults its Completion and
    // declines later posts; the batcher dispatches the next item as usual, and its Completion never faults.
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public async Task ADispatchThatFaults_FailsEveryUnansweredCallerOfItsBatch_AndTheBatcherGoesOn(int trial)
    {
        var time = new ManualTimeProvider();
        var error = new InvalidOperationException("dispatch fault");
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                batch.TrySetResult(0, batch[0]);
                if (batch[0] != 1)
                {
                    return default;
                }

                return trial switch
                {
                    0 => throw error,
                    1 => ValueTask.FromException(error),
                    _ => FaultAfterYieldAsync(error),
                };
            },
            new BatcherOptions { MaxBatchSize = 3, MaxDelay = MaxDelay, TimeProvider = time });

        var calls = new[] { 1, 2, 3 }.Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();

        (await calls[0].OrHang()).Should().Be(1, "it was answered before the fault");
        for (var i = 1; i < calls.Length; i++)
        {
            var caught = (await calls[i].Invoking(c => c.OrHang()).Should().ThrowAsync<BatchDispatchException>()).Which;
            caught.InnerException.Should().BeSameAs(error);
            (caught.Index, caught.BatchSize).Should().Be((i, 3));
        }

        var later = batcher.SubmitAsync(4).AsTask();
        time.Advance(MaxDelay);
        (await later.OrHang()).Should().Be(4, "a fault belongs to its batch: the batcher goes on");
        await batcher.CloseAsync().OrHang();
        batcher.Completion.IsCompletedSuccessfully.Should().BeTrue("a dispatch's fault belongs to its callers, not to Completion");

        static async ValueTask FaultAfterYieldAsync(Exception error)
        {
            await Task.Yield();
            throw error;
        }
    }

    // Ports ActionBlock TestOperationCanceledExceptionsIgnored (sync and async bodies; even items throw
    // OperationCanceledException, odd ones are summed). DIFFERENCE BY DESIGN: ActionBlock drops the even messages
    // silently; each even caller here is answered with a BatchDispatchException around the dispatch's
    // OperationCanceledException (not a bare OperationCanceledException, which would read as the caller's own
    // cancellation). As upstream, the exceptions stop nothing: every odd item is processed and answered.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ADispatchThatThrowsOperationCanceled_FailsOnlyItsOwnCaller_WithBatchDispatchException_AndTheRestAreProcessed(bool asynchronous)
    {
        const int MaxValue = 10;
        var sumOfOdds = 0;
        void Body(Batch<int, int> batch)
        {
            if (batch[0] % 2 == 0)
            {
                throw new OperationCanceledException();
            }

            Interlocked.Add(ref sumOfOdds, batch[0]);
            batch.TrySetResult(0, batch[0]);
        }

        var options = new BatcherOptions { MaxBatchSize = 1, MaxDelay = MaxDelay, TimeProvider = new ManualTimeProvider() };
        var batcher = asynchronous
            ? new Batcher<int, int>(
                async ValueTask (batch, _) =>
                {
                    await Task.Yield();
                    Body(batch);
                },
                options)
            : new Batcher<int, int>(
                (batch, _) =>
                {
                    Body(batch);
                    return default;
                },
                options);

        var calls = Enumerable.Range(0, MaxValue).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();

        for (var i = 0; i < MaxValue; i++)
        {
            if (i % 2 == 0)
            {
                var caught = await calls[i].Invoking(c => c.OrHang()).Should().ThrowAsync<BatchDispatchException>();
                caught.Which.InnerException.Should().BeOfType<OperationCanceledException>();
            }
            else
            {
                (await calls[i].OrHang()).Should().Be(i);
            }
        }

        Volatile.Read(ref sumOfOdds).Should().Be(Enumerable.Range(0, MaxValue).Where(i => i % 2 != 0).Sum());
    }

    // Ports BatchBlock TestPrecancellation and TestTriggerBatch_Cancellation, and ActionBlock TestPrecanceledToken. Their
    // token cancels the whole block (posts declined, nothing output, the trigger makes nothing); here a token cancels its
    // own caller only: a submit with a cancelled token completes at once, Canceled, and takes no place; a caller cancelled
    // while its item waits in the queue is released at once and left out of the batch the trigger (MaxDelay) cuts, while
    // the other item of that batch is dispatched; a trigger whose only item was cancelled dispatches nothing.
    [Fact]
    public async Task ACancelledCaller_IsLeftOutOfItsBatch_AndATriggerOverOnlyCancelledItemsDispatchesNothing()
    {
        var (batcher, dispatch, time) = NewBatcher(maxBatchSize: 3);
        dispatch.OpenAll();

        var precancelled = batcher.SubmitAsync(0, new CancellationToken(canceled: true)).AsTask();
        precancelled.IsCanceled.Should().BeTrue();
        batcher.Count.Should().Be(0, "a submit with a cancelled token takes no place");

        using var first = new CancellationTokenSource();
        var cancelled = batcher.SubmitAsync(1, first.Token).AsTask();
        var kept = batcher.SubmitAsync(2).AsTask();
        await first.CancelAsync();
        (await cancelled.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(first.Token);
        kept.IsCompleted.Should().BeFalse("the other caller is not affected");
        time.Advance(MaxDelay);
        (await kept.OrHang()).Should().Be(2);

        using var second = new CancellationTokenSource();
        var alone = batcher.SubmitAsync(3, second.Token).AsTask();
        await second.CancelAsync();
        await alone.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        time.Advance(MaxDelay);
        await batcher.CloseAsync().OrHang();

        dispatch.Batches.Should().BeEquivalentTo(new[] { new[] { 2 } }, o => o.WithStrictOrdering(), "cancelled items are never dispatched, and no empty batch is");
    }

    // Ports the waiting-send half of BatchBlock TestBoundedCapacityFromSends (sends postponed on a full bounded block are
    // released without being consumed): a caller waiting for room that cancels is released at once with its own token,
    // its item is never dispatched, and the room it would have taken goes to the callers behind it, in order.
    [Fact]
    public async Task ACallerWaitingForRoom_CancelsItsWait_AndTheNextWaitersTakeItsPlace()
    {
        var (batcher, dispatch, _) = NewBatcher(maxBatchSize: 2, capacity: 2);
        var running = new[] { 0, 1 }.Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();
        var first = await dispatch.NextAsync();
        var queued = new[] { 2, 3 }.Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();
        using var cts = new CancellationTokenSource();
        var cancelled = batcher.SubmitAsync(4, cts.Token).AsTask();
        var waiting = new[] { 5, 6 }.Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();

        await cts.CancelAsync();
        (await cancelled.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(cts.Token);

        dispatch.OpenAll();
        (await Task.WhenAll(running.Concat(queued).Concat(waiting)).OrHang()).Should().Equal(0, 1, 2, 3, 5, 6);
        first.Items.Should().Equal(0, 1);
        dispatch.Batches.Should().BeEquivalentTo(new[] { new[] { 0, 1 }, new[] { 2, 3 }, new[] { 5, 6 } }, o => o.WithStrictOrdering());
    }

    // Ports BatchBlock TestFaultingAndCancellation (two batches received, then the block is faulted or cancelled: the
    // buffered items are dropped and OutputCount is 0) and ActionBlock TestFault. The batcher has no Fault(exception);
    // CloseAsync with FailPending is its way to drop what is buffered: each queued caller fails at once with
    // ClosedException, Count is 0, the running dispatch is still awaited (and its callers answered), and only then do the
    // close and Completion complete.
    [Fact]
    public async Task ClosingWithFailPending_FailsTheBufferedItemsAtOnce_AndWaitsForTheRunningDispatch()
    {
        var (batcher, dispatch, _) = NewBatcher(maxBatchSize: 2, mode: BatcherShutdownMode.FailPending);
        var running = new[] { 0, 1 }.Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();
        var first = await dispatch.NextAsync();
        var buffered = new[] { 2, 3, 4 }.Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();
        batcher.Count.Should().Be(3);

        var shutdown = batcher.CloseAsync();

        foreach (var call in buffered)
        {
            await call.Invoking(c => c.OrHang()).Should().ThrowAsync<ClosedException>();
        }

        batcher.Count.Should().Be(0, "the buffered items were dropped");
        shutdown.IsCompleted.Should().BeFalse("the running dispatch is awaited");
        batcher.Completion.IsCompleted.Should().BeFalse();
        first.Release.SetResult();
        await shutdown.OrHang();
        (await Task.WhenAll(running).OrHang()).Should().Equal(0, 1);
        batcher.Completion.IsCompletedSuccessfully.Should().BeTrue();
        dispatch.Batches.Should().BeEquivalentTo(new[] { new[] { 0, 1 } }, o => o.WithStrictOrdering());
    }

    // Ports ActionBlock TestReleasingOfPostponedMessages (BoundedCapacity 1, one item being processed, ten sends postponed,
    // then Complete: every postponed send returns false once the body finishes) and the every-send-completes half of
    // BatchBlock TestBoundedCapacityFromSends, through DisposeAsync: each submit waiting for room fails at once (an
    // InvalidOperationException: the batcher is disposed), the queued item is still drained, DisposeAsync waits for the
    // running dispatch, and a later submit fails at once with ObjectDisposedException.
    [Fact]
    public async Task DisposingWhileSubmitsWaitForRoom_FailsTheWaiters_DrainsTheQueue_AndWaitsForTheRunningDispatch()
    {
        var (batcher, dispatch, _) = NewBatcher(maxBatchSize: 1, capacity: 1);
        var running = batcher.SubmitAsync(0).AsTask();
        await dispatch.NextAsync();
        var queued = batcher.SubmitAsync(1).AsTask();
        var waiting = Enumerable.Range(2, 8).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();
        batcher.Count.Should().Be(1);

        var disposal = batcher.DisposeAsync().AsTask();

        foreach (var call in waiting)
        {
            await call.Invoking(c => c.OrHang()).Should().ThrowAsync<InvalidOperationException>();
        }

        disposal.IsCompleted.Should().BeFalse("the running dispatch is awaited");
        dispatch.OpenAll();
        await disposal.OrHang();
        (await running.OrHang()).Should().Be(0);
        (await queued.OrHang()).Should().Be(1, "an accepted item is drained");
        batcher.Completion.IsCompletedSuccessfully.Should().BeTrue();
        var late = batcher.SubmitAsync(42).AsTask();
        late.IsCompleted.Should().BeTrue();
        await late.Invoking(l => l.OrHang()).Should().ThrowAsync<ObjectDisposedException>();
        dispatch.Batches.Should().BeEquivalentTo(new[] { new[] { 0 }, new[] { 1 } }, o => o.WithStrictOrdering());
    }

    private static (Batcher<int, int> Batcher, HeldBatchDispatch Dispatch, ManualTimeProvider Time) NewBatcher(
        int maxBatchSize,
        int maxConcurrency = 1,
        TimeSpan? maxDelay = null,
        int? capacity = 4096,
        BatcherShutdownMode mode = BatcherShutdownMode.Drain)
    {
        var time = new ManualTimeProvider();
        var dispatch = new HeldBatchDispatch();
        var batcher = new Batcher<int, int>(
            dispatch.DispatchAsync,
            new BatcherOptions
            {
                MaxBatchSize = maxBatchSize,
                MaxConcurrency = maxConcurrency,
                MaxDelay = maxDelay ?? MaxDelay,
                Capacity = capacity,
                ShutdownMode = mode,
                TimeProvider = time,
            });
        return (batcher, dispatch, time);
    }
}
