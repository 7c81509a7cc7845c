using System;
using System.Collections.Generic;
using System.Linq;
using System.Diagnostics.Metrics;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Threading;
using System.Threading.Tasks;
using System.Threading.Tasks.Sources;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>
/// Invariant 10 of src/Concurrency.Primitives/Batching/README.md, the pooled per-item wait: a thread keeps the items it
/// released, hands the overflow back to their batcher in chains, and takes those back when its own run out, so no item
/// is lost; and an item carries nothing of one use into the next (no token registration, no early release by its
/// caller), and honours the context its caller awaited in. Each test runs on a thread of its own, whose item cache
/// starts empty.
/// </summary>
public sealed class BatchItemPoolingTests
{
    /// <summary>
    /// Guards the pool's three tiers (the thread's cache of 256, its spill chain, the batcher's returned chains): 600
    /// items released on one thread are all rented again, and no new one is made.
    /// </summary>
    [Fact]
    public void ItemsReleasedPastAThreadsCache_GoBackToTheirBatcher_AndAreAllRentedAgain()
    {
        FreshThread.Run(() =>
        {
            const int count = 600; // past the thread's cache (256) and one full chain handed back to the batcher (256)
            var owner = NewOwner();
            BatchItem<int, int>? returned = null;
            var first = new BatchItem<int, int>[count];
            for (var i = 0; i < count; i++)
            {
                first[i] = RentInUse(owner, ref returned, i);
            }

            first.Should().OnlyHaveUniqueItems("a fresh thread has no cached items: each one is new");
            foreach (var item in first)
            {
                Finish(item);
            }

            returned = TakeReturned(owner); // what the batcher's next submit takes over when its thread's items run out
            returned.Should().NotBeNull("the thread handed its overflow back to the batcher");
            var again = new BatchItem<int, int>[count];
            for (var i = 0; i < count; i++)
            {
                again[i] = RentInUse(owner, ref returned, i);
            }

            again.Should().OnlyHaveUniqueItems().And.BeSubsetOf(first, "every released item was kept for reuse: none was lost, none made anew");
        });
    }

    /// <summary>
    /// Guards the release of an item's token registration with its answer (result or failure): once the item serves its
    /// next caller, cancelling its earlier caller's token must not touch it.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TheTokenOfAnItemsEarlierUse_CannotFailItsNextCaller(bool firstUseFailed)
    {
        FreshThread.Run(() =>
        {
            var owner = NewOwner();
            BatchItem<int, int>? returned = null;
            using var earlier = new CancellationTokenSource();
            var item = RentInUse(owner, ref returned, 1, earlier.Token);
            var version = item.Version;
            if (firstUseFailed)
            {
                item.TrySetException(new InvalidOperationException("first use")).Should().BeTrue();
                FluentActions.Invoking(() => ReadAnswer(item, version)).Should().Throw<InvalidOperationException>().WithMessage("first use");
            }
            else
            {
                item.TrySetResult(10).Should().BeTrue();
                ReadAnswer(item, version).Should().Be(10);
            }

            item.ReleaseByBatcher();
            var next = RentInUse(owner, ref returned, 2);
            next.Should().BeSameAs(item);

            earlier.Cancel(); // the first caller's token, cancelled after its answer, while the item serves the next caller

            next.IsCompleted.Should().BeFalse("the first use's registration went with its answer");
            next.TrySetResult(20).Should().BeTrue();
            ReadAnswer(next, next.Version).Should().Be(20);
        });
    }

    /// <summary>
    /// Guards the off-path answer's hold (a caller's token fails the item from outside both owners): the canceller lets
    /// go once the failure is signalled, so the item is recycled when its caller and its batcher have let go too.
    /// </summary>
    [Fact]
    public void AnItemFailedByItsCallersToken_IsRecycled_OnceItsCallerAndItsBatcherLetGo()
    {
        FreshThread.Run(() =>
        {
            var owner = NewOwner();
            BatchItem<int, int>? returned = null;
            using var cancel = new CancellationTokenSource();
            var item = RentInUse(owner, ref returned, 1, cancel.Token);
            var version = item.Version;

            cancel.Cancel(); // the callback answers the item on this thread, holding it while it signals
            FluentActions.Invoking(() => ReadAnswer(item, version)).Should().Throw<OperationCanceledException>();
            item.ReleaseByBatcher();

            BatchItem<int, int>.Rent(owner, ref returned).Should().BeSameAs(item, "its caller, its batcher and its canceller have all let go");
        });
    }

    /// <summary>
    /// Guards the cut's release of an item whose caller gave up before it (invariant 10): the cut lets go of it, so once
    /// its caller has read its cancellation the item serves the next submit on that thread, which then allocates nothing.
    /// Everything runs on one thread: the cancellation, the caller's read, and the cut (the submit that fills the batch makes it).
    /// </summary>
    [Fact]
    public async Task ACallerWhoGaveUpBeforeTheCut_LeavesItsItemToTheNextSubmit_WhichAllocatesNothing()
    {
        using var meters = new PrivateMeterFactory(); // instruments nobody listens to: recording them allocates nothing
        var batcher = new Batcher<int, int>(
            (Batch<int, int> batch, CancellationToken _) =>
            {
                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, batch[i]);
                }

                return default;
            },
            new BatcherOptions { MaxBatchSize = 2, MaxDelay = TimeSpan.FromHours(1), Timeout = Timeout.InfiniteTimeSpan, DispatchTimeout = Timeout.InfiniteTimeSpan, MeterFactory = meters });
        Task<int>? kept = null;
        Task<int>? next = null;
        var allocated = -1L;

        FreshThread.Run(() =>
        {
            using var cancel = new CancellationTokenSource();
            var gone = batcher.SubmitAsync(1, cancel.Token);
            cancel.Cancel();                                       // the caller gives up, here
            gone.AsTask().IsCanceled.Should().BeTrue();            // and reads its cancellation, here
            kept = batcher.SubmitAsync(2).AsTask();                // fills the batch: cut here, leaving item 1 out

            var before = GC.GetAllocatedBytesForCurrentThread();
            var third = batcher.SubmitAsync(3);
            allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            next = third.AsTask();
        });

        allocated.Should().Be(0, "item 1's pooled item, let go by its caller, its canceller and the cut, serves the next submit");
        (await kept!.OrHang()).Should().Be(2);
        await batcher.CloseAsync().OrHang();
        (await next!.OrHang()).Should().Be(3);
    }

    /// <summary>
    /// Guards the shutdown's release of the items it fails (invariant 10): a FailPending close lets go of the queued
    /// items it fails and of the callers still waiting for room, so once those callers have read their failures their
    /// items serve later submits on that thread (here to another batcher of the same types), which allocate nothing.
    /// </summary>
    [Fact]
    public async Task ItemsAFailPendingCloseFails_AreLetGo_AndServeTheNextSubmitsOnThatThread()
    {
        using var meters = new PrivateMeterFactory(); // instruments nobody listens to: recording them allocates nothing
        var entered = Bounded.NewGate();
        var release = Bounded.NewGate();
        var closing = new Batcher<int, int>(
            async (batch, _) =>
            {
                entered.TrySetResult();
                await release.Task;
                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, batch[i]);
                }
            },
            NoBounds(meters, size: 2, capacity: 2, BatcherShutdownMode.FailPending));
        var other = new Batcher<int, int>((Batch<int, int> _, CancellationToken _) => default, NoBounds(meters, size: 10, capacity: 10));
        var running = new[] { closing.SubmitAsync(1).AsTask(), closing.SubmitAsync(2).AsTask() }; // dispatched, and held
        await entered.Task.OrHang();
        var warm = other.SubmitAsync(0).AsTask();                                               // arms the other batcher's MaxDelay timer, once
        Task? close = null;
        Task<int>[]? next = null;
        var allocated = -1L;

        FreshThread.Run(() =>
        {
            var third = closing.SubmitAsync(3);                            // fill the queue
            var fourth = closing.SubmitAsync(4);
            var waiting = closing.SubmitAsync(5);                          // waits for room
            close = closing.CloseAsync();                                  // fails items 3 and 4 and the waiter, here
            third.AsTask().Exception!.InnerException.Should().BeOfType<ClosedException>(); // each caller reads its failure, here
            fourth.AsTask().Exception!.InnerException.Should().BeOfType<ClosedException>();
            waiting.AsTask().Exception!.InnerException.Should().BeOfType<ClosedException>();

            var before = GC.GetAllocatedBytesForCurrentThread();
            var sixth = other.SubmitAsync(6);
            var seventh = other.SubmitAsync(7);
            var eighth = other.SubmitAsync(8);
            allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            next = new[] { sixth.AsTask(), seventh.AsTask(), eighth.AsTask() };
        });

        allocated.Should().Be(0, "the three items the close failed, let go by it and by their callers, serve the next three submits");
        release.SetResult();
        (await Task.WhenAll(running).OrHang()).Should().Equal(1, 2);
        await close!.OrHang();
        await other.CloseAsync().OrHang();
        await Task.WhenAll(next!.Append(warm)).Invoking(t => t.OrHang()).Should().ThrowAsync<BatchItemNotCompletedException>("the other batcher's dispatch answers nothing");
    }

    /// <summary>
    /// Guards the release of a dispatched batch's items when its dispatch is finished (invariant 10), a coalesced slot's
    /// follower included: the batcher lets go of every caller's item, so the thread that then reads the answers gets
    /// the items back for its next submits (here to another batcher of the same types), which allocate nothing.
    /// </summary>
    [Fact]
    public async Task ItemsOfAFinishedDispatch_AreLetGo_AndServeTheNextSubmitsOfTheThreadThatReadTheirAnswers()
    {
        using var meters = new PrivateMeterFactory(); // instruments nobody listens to: recording them allocates nothing
        var options = NoBounds(meters, size: 2, capacity: 2);
        var dispatching = new Batcher<int, int>(
            (IReadOnlyList<int> items, CancellationToken _) => new ValueTask<IReadOnlyList<int>>(items.Select(item => item * 10).ToArray()),
            new BatcherOptions<int>
            {
                MaxBatchSize = options.MaxBatchSize,
                MaxDelay = options.MaxDelay,
                Timeout = options.Timeout,
                DispatchTimeout = options.DispatchTimeout,
                MeterFactory = meters,
                CoalescingComparer = EqualityComparer<int>.Default,
            });
        var other = new Batcher<int, int>((Batch<int, int> _, CancellationToken _) => default, NoBounds(meters, size: 10, capacity: 10));
        var warm = other.SubmitAsync(0).AsTask(); // arms the other batcher's MaxDelay timer, once
        var submitted = Bounded.NewGate();
        var finished = Bounded.NewGate();
        using var drained = new ManualResetEventSlim();
        Task<int>[]? answered = null;
        Task<int>[]? next = null;
        var allocated = -1L;

        var thread = new Thread(() =>
        {
            try
            {
                var first = dispatching.SubmitAsync(7);  // the slot's caller
                var second = dispatching.SubmitAsync(7); // its follower: the batch is full, cut here, dispatched on the pool
                submitted.TrySetResult();
                drained.Wait(Bounded.HangLimit).Should().BeTrue();
                answered = new[] { first.AsTask(), second.AsTask() }; // completed: each caller reads its answer, here, after the batcher let go
                answered.Should().OnlyContain(task => task.IsCompletedSuccessfully);

                var before = GC.GetAllocatedBytesForCurrentThread();
                var third = other.SubmitAsync(8);
                var fourth = other.SubmitAsync(9);
                allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                next = new[] { third.AsTask(), fourth.AsTask() };
                finished.TrySetResult();
            }
            catch (Exception exception)
            {
                finished.TrySetException(exception);
            }
        });
        thread.Start();
        await submitted.Task.OrHang();
        await dispatching.CloseAsync().OrHang(); // the batch's dispatch has been finished, and its items let go by the batcher
        drained.Set();
        await finished.Task.OrHang();

        (await Task.WhenAll(answered!).OrHang()).Should().Equal(70, 70);
        allocated.Should().Be(0, "the two items of the finished batch, let go by the batcher and then by their callers, serve the next two submits");
        await other.CloseAsync().OrHang();
        await Task.WhenAll(next!.Append(warm)).Invoking(t => t.OrHang()).Should().ThrowAsync<BatchItemNotCompletedException>("the other batcher's dispatch answers nothing");
    }

    /// <summary>
    /// Guards the finish's release of the items no answer let go of (invariant 10): a caller that gives up while its batch
    /// is dispatched is answered from off the batcher's path, which leaves the batcher's hold to the finish; once the
    /// dispatch is finished and the caller has read its cancellation, its item serves that thread's next submit, which
    /// allocates nothing. With <paramref name="follower"/>, the caller who gives up is a coalesced slot's follower.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AnItemWhoseCallerGaveUpDuringItsDispatch_IsLetGoByTheFinish_AndServesTheNextSubmitOnThatThread(bool follower)
    {
        using var meters = new PrivateMeterFactory(); // instruments nobody listens to: recording them allocates nothing
        var options = NoBounds(meters, size: 2, capacity: 2);
        using var entered = new ManualResetEventSlim();
        var release = Bounded.NewGate();
        var dispatching = new Batcher<int, int>(
            async (IReadOnlyList<int> items, CancellationToken _) =>
            {
                entered.Set();
                await release.Task.ConfigureAwait(false);
                return items.Select(item => item * 10).ToArray();
            },
            new BatcherOptions<int>
            {
                MaxBatchSize = options.MaxBatchSize,
                MaxDelay = options.MaxDelay,
                Timeout = options.Timeout,
                DispatchTimeout = options.DispatchTimeout,
                MeterFactory = meters,
                CoalescingComparer = follower ? EqualityComparer<int>.Default : null,
            });
        var other = new Batcher<int, int>((Batch<int, int> _, CancellationToken _) => default, NoBounds(meters, size: 10, capacity: 10));
        var warm = other.SubmitAsync(0).AsTask(); // arms the other batcher's MaxDelay timer, once
        var gaveUp = Bounded.NewGate();
        var finished = Bounded.NewGate();
        using var drained = new ManualResetEventSlim();
        Task<int>[]? answered = null;
        Task<int>[]? next = null;
        var allocated = -1L;

        var thread = new Thread(() =>
        {
            try
            {
                using var cancel = new CancellationTokenSource();
                var kept = dispatching.SubmitAsync(7);                               // keeps the batch live: it is not abandoned
                var gone = dispatching.SubmitAsync(follower ? 7 : 8, cancel.Token); // the batch is full: cut here, dispatched on the pool
                entered.Wait(Bounded.HangLimit).Should().BeTrue();
                cancel.Cancel();                                                     // gives up while the batch is dispatched
                gaveUp.TrySetResult();
                drained.Wait(Bounded.HangLimit).Should().BeTrue();
                answered = new[] { kept.AsTask(), gone.AsTask() };                  // each caller reads its answer, here, after the finish

                var before = GC.GetAllocatedBytesForCurrentThread();
                var third = other.SubmitAsync(8);
                var fourth = other.SubmitAsync(9);
                allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                next = new[] { third.AsTask(), fourth.AsTask() };
                finished.TrySetResult();
            }
            catch (Exception exception)
            {
                finished.TrySetException(exception);
            }
        });
        thread.Start();
        await gaveUp.Task.OrHang();
        release.SetResult();
        await dispatching.CloseAsync().OrHang(); // the dispatch has returned and its batch is finished
        drained.Set();
        await finished.Task.OrHang();

        (await answered![0].OrHang()).Should().Be(70);
        await answered[1].Invoking(t => t.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        allocated.Should().Be(0, "the finish let go of the item whose caller gave up, and of the other; their callers then read their answers: both serve the next two submits");
        await other.CloseAsync().OrHang();
        await Task.WhenAll(next!.Append(warm)).Invoking(t => t.OrHang()).Should().ThrowAsync<BatchItemNotCompletedException>("the other batcher's dispatch answers nothing");
    }

    /// <summary>
    /// Guards the reuse of a dispatch's token source (0 B per batch): a batch whose callers can give up gets a token
    /// source, and when none of them did, the next batch reuses it. The submit that fills the second batch cuts it (on
    /// this thread), taking the source again, and allocates nothing.
    /// </summary>
    [Fact]
    public void TheTokenSourceOfABatchNoCallerGaveUpOn_IsReusedByTheNextBatch_WhoseCutAllocatesNothing()
    {
        using var meters = new PrivateMeterFactory();
        var batcher = new Batcher<int, int>(
            (Batch<int, int> batch, CancellationToken _) =>
            {
                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, batch[i] * 10);
                }

                return default;
            },
            NoBounds(meters, size: 2, capacity: 2));
        var allocated = new long[3];

        FreshThread.Run(() =>
        {
            using var callers = new CancellationTokenSource(); // never cancelled: each batch counts its callers, and none gives up
            for (var round = 0; round < allocated.Length; round++)
            {
                var before = GC.GetAllocatedBytesForCurrentThread();
                var first = batcher.SubmitAsync(1, callers.Token);
                var second = batcher.SubmitAsync(2, callers.Token); // full: cut here, taking a token source; dispatched on the pool
                allocated[round] = GC.GetAllocatedBytesForCurrentThread() - before;

                SpinWait.SpinUntil(() => first.IsCompleted && second.IsCompleted && BatcherInternals.RunningLoops(batcher) == 0, Bounded.HangLimit).Should().BeTrue("the batch is answered and its loop leaves");
#pragma warning disable VSTHRD002 // completed (checked above): reading never blocks
                first.Result.Should().Be(10); // read here: each item comes back to this thread for the next round
                second.Result.Should().Be(20);
#pragma warning restore VSTHRD002
            }
        });

        allocated.Skip(1).Should().OnlyContain(bytes => bytes == 0, $"the first batch's token source (and items) serve every later round; the rounds allocated {string.Join(", ", allocated)} bytes");
    }

    /// <summary>
    /// Guards what a finished batch keeps (invariant 10): nothing of its callers. Its values are cleared from the batch's
    /// slots and its items are reset when they are recycled, so a value submitted once is not kept alive by the batcher
    /// (a pooled batch core lives as long as its batcher).
    /// </summary>
    [Fact]
    public async Task AFinishedBatch_KeepsNoneOfItsValuesAlive()
    {
        var batcher = new Batcher<object, int>(
            (IReadOnlyList<object> items, CancellationToken _) => new ValueTask<IReadOnlyList<int>>(items.Select(_ => 1).ToArray()),
            new BatcherOptions { MaxBatchSize = 2, MaxConcurrency = 1, MaxDelay = TimeSpan.FromHours(1), Timeout = Timeout.InfiniteTimeSpan, DispatchTimeout = Timeout.InfiniteTimeSpan });

        var (values, answers) = SubmitTwoValues(batcher);
        (await Task.WhenAll(answers).OrHang()).Should().Equal(1, 1);
        SpinWait.SpinUntil(() => BatcherInternals.RunningLoops(batcher) == 0, Bounded.HangLimit).Should().BeTrue("the batch is finished and its loop leaves");

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        values.Should().OnlyContain(value => !value.IsAlive, "the batcher let go of both values when their batch finished");
        await batcher.CloseAsync().OrHang();
    }

    /// <summary>
    /// Guards the batcher's hold through a failure: an answer that lets go of it (a dispatch's) leaves the item to its
    /// caller, whose read recycles it; one that keeps it (the deadline sweep's, while the item's dispatch may still run)
    /// leaves the item in use after that read, until the batcher lets go.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AFailure_LetsGoOfTheBatchersHold_OnlyWhenItSaysSo(bool releaseBatcher)
    {
        FreshThread.Run(() =>
        {
            var owner = NewOwner();
            BatchItem<int, int>? returned = null;
            var item = RentInUse(owner, ref returned, 1);
            var version = item.Version;

            item.TrySetException(item.Use, new TimeoutException("failed"), releaseBatcher).Should().BeTrue();
            FluentActions.Invoking(() => ReadAnswer(item, version)).Should().Throw<TimeoutException>();
            if (!releaseBatcher)
            {
                BatchItem<int, int>.Rent(owner, ref returned).Should().NotBeSameAs(item, "the batcher still holds it: its dispatch may still be running");
                item.ReleaseByBatcher();
            }

            BatchItem<int, int>.Rent(owner, ref returned).Should().BeSameAs(item, "its caller and its batcher have both let go");
        });
    }

    /// <summary>
    /// Guards the batcher's release for a given use: a finished batch lets go of each item it cut in the use it cut,
    /// after a dispatch's answer may already have let go and the item been recycled into a later caller's use; that
    /// stale release must leave the later use's hold alone, or the item is recycled under the batch that now holds it.
    /// </summary>
    [Fact]
    public void AStaleReleaseByTheBatcher_ForAnEarlierUse_LeavesTheItemsLaterUseHeld()
    {
        FreshThread.Run(() =>
        {
            var owner = NewOwner();
            BatchItem<int, int>? returned = null;
            var item = RentInUse(owner, ref returned, 1);
            var earlier = item.Use;
            item.TrySetResult(earlier, 10, releaseBatcher: true).Should().BeTrue(); // the dispatch's answer lets go of the batcher's hold
            ReadAnswer(item, item.Version).Should().Be(10);                         // and the caller's read recycles the item
            RentInUse(owner, ref returned, 2).Should().BeSameAs(item, "recycled, it serves the next submit");

            item.ReleaseByBatcher(earlier); // the finished batch lets go of the use it cut: a use the item has left

            var version = item.Version;
            item.TrySetException(item.Use, new TimeoutException("swept")).Should().BeTrue(); // an answer that keeps the batcher's hold
            FluentActions.Invoking(() => ReadAnswer(item, version)).Should().Throw<TimeoutException>();
            BatchItem<int, int>.Rent(owner, ref returned).Should().NotBeSameAs(item, "the later use's batcher still holds it");
        });
    }

    /// <summary>Guards GetResult before the answer: it throws, and the caller keeps its hold, so the item is not recycled under it.</summary>
    [Fact]
    public void AResultReadBeforeTheAnswer_Throws_AndTheCallerKeepsItsHoldOnTheItem()
    {
        FreshThread.Run(() =>
        {
            var owner = NewOwner();
            BatchItem<int, int>? returned = null;
            var item = RentInUse(owner, ref returned, 1);
            var version = item.Version;

            FluentActions.Invoking(() => ReadAnswer(item, version)).Should().Throw<InvalidOperationException>();
            item.TrySetResult(10).Should().BeTrue();
            item.ReleaseByBatcher();

            BatchItem<int, int>.Rent(owner, ref returned).Should().NotBeSameAs(item, "its caller has not read its answer yet");
            ReadAnswer(item, version).Should().Be(10);
        });
    }

    /// <summary>
    /// Guards the continuation path outside the systematic tests: a caller that awaits under a SynchronizationContext
    /// (a UI thread, a legacy request context) resumes through that context, not on the thread pool.
    /// </summary>
    [Fact]
    public void AnAwaitUnderASynchronizationContext_ResumesThroughThatContext()
    {
        FreshThread.Run(() =>
        {
            var owner = NewOwner();
            BatchItem<int, int>? returned = null;
            var item = RentInUse(owner, ref returned, 1);
            var version = item.Version;
            var context = new InlineContext();
            var ranOn = -1;

            AwaitUnder(context, item, version, _ => ranOn = Environment.CurrentManagedThreadId);

            item.TrySetResult(10).Should().BeTrue();

            context.Posts.Should().Be(1);
            ranOn.Should().Be(Environment.CurrentManagedThreadId, "the context ran the continuation (inline, on this thread), as an await under it expects");
            ReadAnswer(item, version).Should().Be(10);
        });
    }

    /// <summary>
    /// The same for a task scheduler: a caller that awaits inside a task running on its own scheduler (no
    /// SynchronizationContext: an exclusive scheduler, a limited-concurrency one) resumes on that scheduler, as an await
    /// of a Task does, not on the thread pool.
    /// </summary>
    [Fact]
    public void AnAwaitInsideATaskOnItsOwnScheduler_ResumesOnThatScheduler()
    {
        FreshThread.Run(() =>
        {
            var owner = NewOwner();
            BatchItem<int, int>? returned = null;
            var item = RentInUse(owner, ref returned, 1);
            var version = item.Version;
            var scheduler = new InlineScheduler();
            TaskScheduler? ranUnder = null;

            var awaiting = Task.Factory.StartNew(
                () => ((IValueTaskSource<int>)item).OnCompleted(_ => ranUnder = TaskScheduler.Current, null, version, ValueTaskSourceOnCompletedFlags.UseSchedulingContext),
                CancellationToken.None,
                TaskCreationOptions.None,
                scheduler);
            awaiting.IsCompletedSuccessfully.Should().BeTrue("the scheduler ran the awaiting task inline");
            scheduler.Queued.Should().Be(1, "the await itself ran there");

            item.TrySetResult(10).Should().BeTrue();

            scheduler.Queued.Should().Be(2, "the continuation was queued to the awaiting task's scheduler");
            ranUnder.Should().BeSameAs(scheduler);
            ReadAnswer(item, version).Should().Be(10);
        });
    }

    /// <summary>
    /// What one use's await captured (a context to resume in) is that use's alone: the item, reused on the same thread by
    /// a caller that awaits with no context, resumes that caller on the pool, not through the first caller's context.
    /// </summary>
    [Fact]
    public void AnItemReusedAfterAnAwaitUnderAContext_ResumesItsNextCallerWithoutThatContext()
    {
        FreshThread.Run(() =>
        {
            var owner = NewOwner();
            BatchItem<int, int>? returned = null;
            var item = RentInUse(owner, ref returned, 1);
            var version = item.Version;
            var context = new InlineContext();
            AwaitUnder(context, item, version, static _ => { });

            item.TrySetResult(1).Should().BeTrue();
            ReadAnswer(item, version).Should().Be(1);
            item.ReleaseByBatcher();
            context.Posts.Should().Be(1);

            var next = RentInUse(owner, ref returned, 2);
            next.Should().BeSameAs(item, "the item went back to this thread's cache");
            var nextVersion = next.Version;
            using var resumed = new ManualResetEventSlim();
            ((IValueTaskSource<int>)next).OnCompleted(_ => resumed.Set(), null, nextVersion, ValueTaskSourceOnCompletedFlags.UseSchedulingContext);
            next.TrySetResult(2).Should().BeTrue();

            resumed.Wait(TimeSpan.FromSeconds(30)).Should().BeTrue("the next caller's continuation ran (on the pool)");
            context.Posts.Should().Be(1, "the first caller's context is not the next caller's");
            ReadAnswer(next, nextVersion).Should().Be(2);
        });
    }

    /// <summary>Options without bounds or timers beyond one MaxDelay timer (an hour), on instruments of a private meter.</summary>
    private static BatcherOptions NoBounds(IMeterFactory meters, int size, int capacity, BatcherShutdownMode mode = BatcherShutdownMode.Drain) => new()
    {
        MaxBatchSize = size,
        Capacity = capacity,
        MaxConcurrency = 1,
        MaxDelay = TimeSpan.FromHours(1),
        Timeout = Timeout.InfiniteTimeSpan,
        DispatchTimeout = Timeout.InfiniteTimeSpan,
        ShutdownMode = mode,
        MeterFactory = meters,
    };

    /// <summary>Submits two fresh objects (a full batch) and returns weak references to them; nothing here keeps them alive.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (WeakReference[] Values, Task<int>[] Answers) SubmitTwoValues(Batcher<object, int> batcher)
    {
        var first = new object();
        var second = new object();
        return (new[] { new WeakReference(first), new WeakReference(second) }, new[] { batcher.SubmitAsync(first).AsTask(), batcher.SubmitAsync(second).AsTask() });
    }

    private static Batcher<int, int> NewOwner() => new((Batch<int, int> _, CancellationToken _) => default);

    /// <summary>Rents an item (from this thread's cache first, as a submit does) and starts its next use.</summary>
    private static BatchItem<int, int> RentInUse(Batcher<int, int> owner, ref BatchItem<int, int>? returned, int value, CancellationToken token = default)
    {
        var item = BatchItem<int, int>.Rent(owner, ref returned);
        item.Initialize(value, deadline: 0, token);
        return item;
    }

    /// <summary>One use, start to end: answered, read by its caller, let go by the batcher (the last owner recycles it).</summary>
    private static void Finish(BatchItem<int, int> item)
    {
        var version = item.Version;
        item.TrySetResult(item.Value).Should().BeTrue();
        ReadAnswer(item, version).Should().Be(item.Value);
        item.ReleaseByBatcher();
    }

    /// <summary>What an await under <paramref name="context"/> does: it registers its continuation to resume there.</summary>
    private static void AwaitUnder(SynchronizationContext context, IValueTaskSource<int> source, short version, Action<object?> continuation)
    {
        var previous = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(context);
        try
        {
            source.OnCompleted(continuation, null, version, ValueTaskSourceOnCompletedFlags.UseSchedulingContext);
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }
    }

    /// <summary>What an await does once the answer is in: the caller reads it (it never blocks; it throws if there is none).</summary>
    private static int ReadAnswer(IValueTaskSource<int> source, short version) => source.GetResult(version);

    /// <summary>Takes the chain of items the thread handed back to <paramref name="owner"/>, as the batcher's Rent does.</summary>
    private static BatchItem<int, int>? TakeReturned(Batcher<int, int> owner)
    {
        var field = typeof(Batcher<int, int>).GetField("_returned", BindingFlags.Instance | BindingFlags.NonPublic)!;
        var chain = (BatchItem<int, int>?)field.GetValue(owner);
        field.SetValue(owner, null);
        return chain;
    }

    /// <summary>A meter factory of its own: its meters' instruments are seen by no listener of the library's static meter.</summary>
    private sealed class PrivateMeterFactory : IMeterFactory
    {
        private readonly List<Meter> _meters = new();

        public Meter Create(MeterOptions options)
        {
            var meter = new Meter(options.Name, options.Version, options.Tags, this);
            _meters.Add(meter);
            return meter;
        }

        public void Dispose()
        {
            foreach (var meter in _meters)
            {
                meter.Dispose();
            }
        }
    }

    /// <summary>A scheduler that runs each task queued to it at once, on the queuing thread, and counts them.</summary>
    private sealed class InlineScheduler : TaskScheduler
    {
        public int Queued { get; private set; }

        protected override void QueueTask(Task task)
        {
            Queued++;
            TryExecuteTask(task);
        }

        protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued) => TryExecuteTask(task);

        protected override IEnumerable<Task> GetScheduledTasks() => Array.Empty<Task>();
    }

    /// <summary>A context that runs what is posted to it at once, on the posting thread, and counts the posts.</summary>
    private sealed class InlineContext : SynchronizationContext
    {
        public int Posts { get; private set; }

        public override void Post(SendOrPostCallback d, object? state)
        {
            Posts++;
            d(state);
        }
    }
}
