using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Conformance;

/// <summary>
/// graphql/dataloader's batch tests (src/__tests__/dataloader.test.js and abuse.test.js) ported to
/// <see cref="Batcher{TItem, TResult}"/>.
/// </summary>
/// <remarks>
/// Mapping: <c>loader.load(key)</c> is <c>SubmitAsync(key)</c>; the batch function is the dispatch (the list form
/// <c>(items, ct) =&gt; results</c>, or the per-item form where a test needs one error per key); <c>loadCalls</c> records
/// each dispatch's items. DataLoader dispatches a batch at the end of the current tick; the batcher at
/// <see cref="BatcherOptions.MaxDelay"/> after the batch's first item, so "one tick" is one <c>time.Advance(MaxDelay)</c> on a
/// manual clock. The batcher has no cache and does not coalesce identical keys: it behaves as DataLoader with
/// <c>cache: false</c>, and every cache, prime and clear test is skipped (see the report).
/// </remarks>
public sealed class DataLoaderConformanceTests
{
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(10);

    // Ports dataloader.test.js "builds a really really simple data loader".
    [Fact]
    public async Task ASubmit_ResolvesToTheValueTheBatchFunctionReturnsForIt()
    {
        var (loader, _, time) = IdLoader<int>();

        var promise1 = loader.SubmitAsync(1).AsTask();
        time.Advance(Tick);

        (await promise1.OrHang()).Should().Be(1);
    }

    // Ports dataloader.test.js "batches multiple requests": two loads in the same tick reach the batch function together.
    [Fact]
    public async Task TwoSubmitsWithinMaxDelay_AreDispatchedAsOneBatch()
    {
        var (loader, loadCalls, time) = IdLoader<int>();

        var promise1 = loader.SubmitAsync(1).AsTask();
        var promise2 = loader.SubmitAsync(2).AsTask();
        loadCalls.Should().BeEmpty("MaxDelay has not passed and the batch is not full");
        time.Advance(Tick);

        (await Task.WhenAll(promise1, promise2).OrHang()).Should().Equal(1, 2);
        loadCalls.Should().BeEquivalentTo(new[] { new[] { 1, 2 } }, o => o.WithStrictOrdering());
    }

    // Ports dataloader.test.js "batches multiple requests with max batch sizes": maxBatchSize 2 splits three loads into
    // [1, 2] and [3]. Here the full batch goes at once, before the tick; the remainder at MaxDelay.
    [Fact]
    public async Task MaxBatchSize_SplitsTheLoads_AFullBatchGoesAtOnce_TheRestAtMaxDelay()
    {
        var (loader, loadCalls, time) = IdLoader<int>(maxBatchSize: 2);

        var promise1 = loader.SubmitAsync(1).AsTask();
        var promise2 = loader.SubmitAsync(2).AsTask();
        var promise3 = loader.SubmitAsync(3).AsTask();

        (await Task.WhenAll(promise1, promise2).OrHang()).Should().Equal(1, 2);
        promise3.IsCompleted.Should().BeFalse("its batch waits for MaxDelay");
        time.Advance(Tick);
        (await promise3.OrHang()).Should().Be(3);
        loadCalls.Should().BeEquivalentTo(new[] { new[] { 1, 2 }, new[] { 3 } }, o => o.WithStrictOrdering());
    }

    // Ports dataloader.test.js "applies maxBatchSize correctly with duplicate keys". DIFFERENCE BY DESIGN: DataLoader
    // coalesces duplicate keys (one batch [a, b, c]); the batcher has no cache and dispatches every submitted item, so
    // maxBatchSize 3 cuts [a, b, a], [a, a, b], [c]. Every caller still gets its own value.
    [Fact]
    public async Task DuplicateKeys_AreNotCoalesced_SoMaxBatchSizeCountsEverySubmit()
    {
        var (loader, loadCalls, time) = IdLoader<string>(maxBatchSize: 3);
        var values = new[] { "a", "b", "a", "a", "a", "b", "c" };

        var results = values.Select(v => loader.SubmitAsync(v).AsTask()).ToArray();
        time.Advance(Tick);

        (await Task.WhenAll(results).OrHang()).Should().Equal(values);
        loadCalls.Should().BeEquivalentTo(new[] { new[] { "a", "b", "a" }, new[] { "a", "a", "b" }, new[] { "c" } }, o => o.WithStrictOrdering());
    }

    // Ports dataloader.test.js "Resolves to error to indicate failure": the batch function answers an odd key with an
    // error; that load rejects with exactly that error, and the next load still succeeds. (Per-item form: TrySetException;
    // the docs: "Whatever the dispatch sets with TrySetException is thrown as is".)
    [Fact]
    public async Task AnErrorSetForOneItem_IsThrownToThatCallerAsIs_AndLaterLoadsStillSucceed()
    {
        var (loader, loadCalls, errors, time) = EvenLoader();

        var load1 = loader.SubmitAsync(1).AsTask();
        time.Advance(Tick);
        var caught = await load1.Invoking(l => l.OrHang()).Should().ThrowAsync<InvalidOperationException>();
        caught.Which.Should().BeSameAs(errors[1]);
        caught.Which.Message.Should().Be("Odd: 1");

        var load2 = loader.SubmitAsync(2).AsTask();
        time.Advance(Tick);
        (await load2.OrHang()).Should().Be(2);

        loadCalls.Should().BeEquivalentTo(new[] { new[] { 1 }, new[] { 2 } }, o => o.WithStrictOrdering());
    }

    // Ports dataloader.test.js "Can represent failures and successes simultaneously": in one batch, key 1 fails with its
    // own error and key 2 resolves.
    [Fact]
    public async Task InOneBatch_OneItemFailsWithItsOwnError_AndTheOtherResolves()
    {
        var (loader, loadCalls, errors, time) = EvenLoader();

        var promise1 = loader.SubmitAsync(1).AsTask();
        var promise2 = loader.SubmitAsync(2).AsTask();
        time.Advance(Tick);

        var caught = await promise1.Invoking(p => p.OrHang()).Should().ThrowAsync<InvalidOperationException>();
        caught.Which.Should().BeSameAs(errors[1]);
        (await promise2.OrHang()).Should().Be(2);
        loadCalls.Should().BeEquivalentTo(new[] { new[] { 1, 2 } }, o => o.WithStrictOrdering());
    }

    // Ports dataloader.test.js "Propagates error to all loads": the batch function's promise rejects; every load of the
    // batch rejects with that same error. DIFFERENCE BY DESIGN (documented): each caller gets its own
    // BatchDispatchException (with its Index) whose InnerException is that same error instance, so a caller can tell a
    // batch fault from an error meant for its item.
    [Fact]
    public async Task ADispatchThatFaults_FailsEveryCallerWithBatchDispatchException_AroundTheSameError()
    {
        var loadCalls = new ConcurrentQueue<int[]>();
        var error = new InvalidOperationException("I am a terrible loader");
        var time = new ManualTimeProvider();
        var loader = new Batcher<int, int>(
            (items, _) =>
            {
                loadCalls.Enqueue(items.ToArray());
                return new ValueTask<IReadOnlyList<int>>(Task.FromException<IReadOnlyList<int>>(error));
            },
            Options(time));

        var promise1 = loader.SubmitAsync(1).AsTask();
        var promise2 = loader.SubmitAsync(2).AsTask();
        time.Advance(Tick);

        var caughtA = (await promise1.Invoking(p => p.OrHang()).Should().ThrowAsync<BatchDispatchException>()).Which;
        var caughtB = (await promise2.Invoking(p => p.OrHang()).Should().ThrowAsync<BatchDispatchException>()).Which;
        caughtA.InnerException.Should().BeSameAs(error);
        caughtB.InnerException.Should().BeSameAs(error);
        (caughtA.Index, caughtA.BatchSize, caughtB.Index, caughtB.BatchSize).Should().Be((0, 2, 1, 2));
        loadCalls.Should().BeEquivalentTo(new[] { new[] { 1, 2 } }, o => o.WithStrictOrdering());
    }

    // Ports abuse.test.js "Batch function must return a Promise, not error synchronously": a batch function that throws
    // instead of returning a failed promise. DataLoader rejects the load with a descriptive error; the batcher treats a
    // synchronous throw as a dispatch fault (BatchDispatchException around the exception), in both dispatch forms.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ADispatchThatThrowsSynchronously_FailsTheCallerWithBatchDispatchException(bool listForm)
    {
        var time = new ManualTimeProvider();
        var error = new InvalidOperationException("Mock Synchronous Error");
        var loader = listForm
            ? new Batcher<int, int>((IReadOnlyList<int> _, CancellationToken _) => throw error, Options(time))
            : new Batcher<int, int>((Batch<int, int> _, CancellationToken _) => throw error, Options(time));

        var load = loader.SubmitAsync(1).AsTask();
        time.Advance(Tick);

        var caught = await load.Invoking(l => l.OrHang()).Should().ThrowAsync<BatchDispatchException>();
        caught.Which.InnerException.Should().BeSameAs(error);
    }

    // Ports abuse.test.js "Batch function must return a Promise of an Array, not null" (and "... a Promise, not null":
    // C# has no null ValueTask; its default is a completed one with a null result, this same case). The batcher fails the
    // item with BatchItemNotCompletedException, reporting the missing list as 0 results.
    [Fact]
    public async Task AListDispatchThatReturnsNull_FailsEveryItemWithBatchItemNotCompleted()
    {
        var time = new ManualTimeProvider();
        var loader = new Batcher<int, int>((_, _) => new ValueTask<IReadOnlyList<int>>((IReadOnlyList<int>)null!), Options(time));

        var load = loader.SubmitAsync(1).AsTask();
        time.Advance(Tick);

        var caught = (await load.Invoking(l => l.OrHang()).Should().ThrowAsync<BatchItemNotCompletedException>()).Which;
        (caught.Index, caught.BatchSize, caught.ResultCount).Should().Be((0, 1, (int?)0));
    }

    // Ports abuse.test.js "Batch function must promise an Array of correct length": an empty result list for one key fails
    // the load. Also with a list that is too long: results map to items by position, so none can be trusted and every
    // item fails (README: "a result list of the wrong length ... BatchItemNotCompletedException for every item").
    [Theory]
    [InlineData(1, 0)]
    [InlineData(2, 3)]
    public async Task AListDispatchThatReturnsTheWrongNumberOfResults_FailsEveryItemWithBatchItemNotCompleted(int keys, int results)
    {
        var time = new ManualTimeProvider();
        var loader = new Batcher<int, int>((_, _) => new ValueTask<IReadOnlyList<int>>(Enumerable.Range(100, results).ToArray()), Options(time));

        var loads = Enumerable.Range(1, keys).Select(k => loader.SubmitAsync(k).AsTask()).ToArray();
        time.Advance(Tick);

        for (var i = 0; i < keys; i++)
        {
            var caught = (await loads[i].Invoking(l => l.OrHang()).Should().ThrowAsync<BatchItemNotCompletedException>()).Which;
            (caught.Index, caught.BatchSize, caught.ResultCount).Should().Be((i, keys, (int?)results));
        }
    }

    // Ports dataloader.test.js "May disable batching" ({ batch: false }): the analogue is MaxBatchSize 1; each load is its
    // own batch, dispatched at once.
    [Fact]
    public async Task MaxBatchSizeOne_DisablesBatching_EachSubmitIsItsOwnBatch()
    {
        var (loader, loadCalls, _) = IdLoader<int>(maxBatchSize: 1);

        var promise1 = loader.SubmitAsync(1).AsTask();
        var promise2 = loader.SubmitAsync(2).AsTask();

        (await Task.WhenAll(promise1, promise2).OrHang()).Should().Equal(1, 2);
        loadCalls.Should().BeEquivalentTo(new[] { new[] { 1 }, new[] { 2 } }, o => o.WithStrictOrdering());
    }

    // Ports dataloader.test.js "May disable caching" ({ cache: false }): the batcher never caches, so repeated keys are
    // loaded again in every tick.
    [Fact]
    public async Task RepeatedKeys_AreDispatchedAgainInEveryBatch_AsDataLoaderWithCachingDisabled()
    {
        var (loader, loadCalls, time) = IdLoader<string>();

        (await LoadTickAsync(loader, time, "A", "B")).Should().Equal("A", "B");
        loadCalls.Should().BeEquivalentTo(new[] { new[] { "A", "B" } }, o => o.WithStrictOrdering());

        (await LoadTickAsync(loader, time, "A", "C")).Should().Equal("A", "C");
        loadCalls.Should().BeEquivalentTo(new[] { new[] { "A", "B" }, new[] { "A", "C" } }, o => o.WithStrictOrdering());

        (await LoadTickAsync(loader, time, "A", "B", "C")).Should().Equal("A", "B", "C");
        loadCalls.Should().BeEquivalentTo(new[] { new[] { "A", "B" }, new[] { "A", "C" }, new[] { "A", "B", "C" } }, o => o.WithStrictOrdering());
    }

    // Ports dataloader.test.js "Keys are repeated in batch when cache disabled": loads A, C, D and loadMany [C, D, A, A, B]
    // (five submits here: the batcher has no loadMany) all reach one batch, in submit order, duplicates kept.
    [Fact]
    public async Task RepeatedKeysInOneTick_AreAllInTheBatch_InSubmitOrder()
    {
        var (loader, loadCalls, time) = IdLoader<string>();

        var values = await LoadTickAsync(loader, time, "A", "C", "D", "C", "D", "A", "A", "B");

        values.Should().Equal("A", "C", "D", "C", "D", "A", "A", "B");
        loadCalls.Should().BeEquivalentTo(new[] { new[] { "A", "C", "D", "C", "D", "A", "A", "B" } }, o => o.WithStrictOrdering());
    }

    // Ports dataloader.test.js "Supports manual dispatch" (a custom batchScheduleFn): the manual clock is the scheduler.
    // Loads A, B, dispatch; loads A, C, dispatch; load D, never dispatched. DIFFERENCE: DataLoader's second batch is [C]
    // (A is cached); without a cache it is [A, C]. D stays pending until something dispatches it (here: the shutdown, which
    // drains it).
    [Fact]
    public async Task TheManualClockIsTheScheduler_NothingIsDispatchedUntilItMoves()
    {
        var (loader, loadCalls, time) = IdLoader<string>();

        var first = new[] { loader.SubmitAsync("A").AsTask(), loader.SubmitAsync("B").AsTask() };
        time.Advance(Tick);
        await Task.WhenAll(first).OrHang();
        var second = new[] { loader.SubmitAsync("A").AsTask(), loader.SubmitAsync("C").AsTask() };
        time.Advance(Tick);
        await Task.WhenAll(second).OrHang();
        var neverDispatched = loader.SubmitAsync("D").AsTask();

        loadCalls.Should().BeEquivalentTo(new[] { new[] { "A", "B" }, new[] { "A", "C" } }, o => o.WithStrictOrdering());
        neverDispatched.IsCompleted.Should().BeFalse();

        await loader.CloseAsync().OrHang();
        (await neverDispatched.OrHang()).Should().Be("D");
    }

    // Ports dataloader.test.js "batches loads occuring within promises": loads issued from chained continuations, before
    // the batch is due, join the same batch.
    [Fact]
    public async Task SubmitsFromLaterContinuations_BeforeMaxDelayPasses_JoinTheSameBatch()
    {
        var (loader, loadCalls, time) = IdLoader<string>();
        var loads = new List<Task<string>> { loader.SubmitAsync("A").AsTask() };

        await Task.Yield();
        await Task.Yield();
        loads.Add(loader.SubmitAsync("B").AsTask());
        await Task.Run(async () =>
        {
            await Task.Yield();
            loads.Add(loader.SubmitAsync("C").AsTask());
            await Task.Yield();
            loads.Add(loader.SubmitAsync("D").AsTask());
        });
        time.Advance(Tick);

        (await Task.WhenAll(loads).OrHang()).Should().Equal("A", "B", "C", "D");
        loadCalls.Should().BeEquivalentTo(new[] { new[] { "A", "B", "C", "D" } }, o => o.WithStrictOrdering());
    }

    // Ports dataloader.test.js "can call a loader from a loader": aLoader's and bLoader's batch functions each load their
    // whole key list from deepLoader; deepLoader batches both lists into one call. (a and b dispatch concurrently on the
    // thread pool, so the order of the two lists in deep's batch is not fixed; DataLoader's follows its job queue.)
    [Fact]
    public async Task ABatcherCalledFromOtherBatchersDispatches_BatchesTheirNestedSubmits()
    {
        var time = new ManualTimeProvider();
        var deepLoadCalls = new ConcurrentQueue<string[][]>();
        var deep = new Batcher<string[], string[]>(
            (keys, _) =>
            {
                var copy = keys.ToArray();
                deepLoadCalls.Enqueue(copy);
                return new ValueTask<IReadOnlyList<string[]>>(copy);
            },
            Options(time));
        var aSubmitted = Bounded.NewGate();
        var bSubmitted = Bounded.NewGate();
        var (a, aLoadCalls) = Nested(deep, aSubmitted, time);
        var (b, bLoadCalls) = Nested(deep, bSubmitted, time);

        var loads = new[] { a.SubmitAsync("A1").AsTask(), b.SubmitAsync("B1").AsTask(), a.SubmitAsync("A2").AsTask(), b.SubmitAsync("B2").AsTask() };
        time.Advance(Tick); // a and b dispatch, each submitting its keys to deep
        await Task.WhenAll(aSubmitted.Task, bSubmitted.Task).OrHang();
        time.Advance(Tick); // deep's batch is due

        (await Task.WhenAll(loads).OrHang()).Should().Equal("A1", "B1", "A2", "B2");
        aLoadCalls.Should().BeEquivalentTo(new[] { new[] { "A1", "A2" } }, o => o.WithStrictOrdering());
        bLoadCalls.Should().BeEquivalentTo(new[] { new[] { "B1", "B2" } }, o => o.WithStrictOrdering());
        deepLoadCalls.Should().ContainSingle().Which.Select(keys => string.Join(",", keys)).Order(StringComparer.Ordinal).Should().Equal("A1,A2", "B1,B2");
    }

    // Ports dataloader.test.js "can call a loader from a loader" with the inner loader being the outer one itself.
    // DIFFERENCE BY DESIGN (documented): DataLoader would schedule a new batch; a dispatch that submits to its own batcher
    // gets InvalidOperationException at once (waiting there could hold every dispatch slot and deadlock).
    [Fact]
    public async Task ADispatchThatSubmitsToItsOwnBatcher_IsRefusedWithInvalidOperation()
    {
        var time = new ManualTimeProvider();
        var refused = Bounded.NewGate<Exception>();
        Batcher<string, string>? loader = null;
        loader = new Batcher<string, string>(
            async (batch, _) =>
            {
                try
                {
                    await loader!.SubmitAsync("inner");
                }
                catch (InvalidOperationException exception)
                {
                    refused.TrySetResult(exception);
                }

                batch.TrySetResult(0, batch[0]);
            },
            Options(time));

        var outer = loader.SubmitAsync("outer").AsTask();
        time.Advance(Tick);

        (await outer.OrHang()).Should().Be("outer");
        (await refused.Task.OrHang()).Message.Should().Contain("from inside its own dispatch");
    }

    // No DataLoader test: DataLoader has no per-load cancellation. The brief's "per-caller cancellation not affecting the
    // batch", written on "batches multiple requests": a caller that gives up before its batch is dispatched is left out of
    // it (documented), and the other callers of the tick are batched and answered as usual.
    [Fact]
    public async Task ACallerCancelledBeforeDispatch_IsLeftOutOfTheBatch_TheOthersAreBatchedAsUsual()
    {
        var (loader, loadCalls, time) = IdLoader<int>();
        using var cts = new CancellationTokenSource();

        var promise1 = loader.SubmitAsync(1).AsTask();
        var promise2 = loader.SubmitAsync(2, cts.Token).AsTask();
        var promise3 = loader.SubmitAsync(3).AsTask();
        await cts.CancelAsync();
        await promise2.Invoking(p => p.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        time.Advance(Tick);

        (await Task.WhenAll(promise1, promise3).OrHang()).Should().Equal(1, 3);
        loadCalls.Should().BeEquivalentTo(new[] { new[] { 1, 3 } }, o => o.WithStrictOrdering());
    }

    // No DataLoader test (see above). A caller that gives up while its batch is being dispatched is released at once; the
    // dispatch goes on, its answer for that item is refused (TrySetResult returns false), and the other callers get theirs.
    [Fact]
    public async Task ACallerCancelledDuringDispatch_IsReleasedAtOnce_WithoutDisturbingTheBatch()
    {
        var time = new ManualTimeProvider();
        var entered = Bounded.NewGate();
        var release = Bounded.NewGate();
        var answers = new ConcurrentQueue<(int Item, bool Accepted)>();
        var loader = new Batcher<int, int>(
            async (batch, _) =>
            {
                entered.TrySetResult();
                await release.Task;
                for (var i = 0; i < batch.Count; i++)
                {
                    answers.Enqueue((batch[i], batch.TrySetResult(i, batch[i])));
                }
            },
            Options(time));
        using var cts = new CancellationTokenSource();

        var promise1 = loader.SubmitAsync(1).AsTask();
        var promise2 = loader.SubmitAsync(2, cts.Token).AsTask();
        var promise3 = loader.SubmitAsync(3).AsTask();
        time.Advance(Tick);
        await entered.Task.OrHang();
        await cts.CancelAsync();

        await promise2.Invoking(p => p.OrHang()).Should().ThrowAsync<OperationCanceledException>("the caller is released while the dispatch still runs");
        promise1.IsCompleted.Should().BeFalse();
        release.SetResult();
        (await Task.WhenAll(promise1, promise3).OrHang()).Should().Equal(1, 3);
        answers.Should().Equal((1, true), (2, false), (3, true));
    }

    // Ports dataloader.test.js "Accepts objects as keys": object keys reach the batch function as the same instances, and
    // each load resolves to the value returned for its own key.
    [Fact]
    public async Task ObjectItems_ReachTheDispatchAsTheSameInstances()
    {
        var (loader, loadCalls, time) = IdLoader<object>();
        var keyA = new object();
        var keyB = new object();

        var valueA = loader.SubmitAsync(keyA).AsTask();
        var valueB = loader.SubmitAsync(keyB).AsTask();
        time.Advance(Tick);

        (await valueA.OrHang()).Should().BeSameAs(keyA);
        (await valueB.OrHang()).Should().BeSameAs(keyB);
        loadCalls.Should().ContainSingle();
        loadCalls.Single()[0].Should().BeSameAs(keyA);
        loadCalls.Single()[1].Should().BeSameAs(keyB);
    }

    // Ports abuse.test.js "Loader creation requires a function".
    [Fact]
    public void CreatingABatcherWithoutADispatch_ThrowsArgumentNull()
    {
        var create = () => new Batcher<int, int>((Func<IReadOnlyList<int>, CancellationToken, ValueTask<IReadOnlyList<int>>>)null!);

        create.Should().Throw<ArgumentNullException>();
    }

    // Ports abuse.test.js "Requires a positive number for maxBatchSize".
    [Fact]
    public void AMaxBatchSizeOfZero_IsRefusedWithAMessageNamingIt()
    {
        var create = () => new Batcher<int, int>((items, _) => new ValueTask<IReadOnlyList<int>>(items.ToArray()), new BatcherOptions { MaxBatchSize = 0 });

        create.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*MaxBatchSize*");
    }

    private static BatcherOptions Options(ManualTimeProvider time, int maxBatchSize = 64) =>
        new() { MaxBatchSize = maxBatchSize, MaxDelay = Tick, TimeProvider = time };

    /// <summary>
    /// DataLoader's <c>idLoader</c>: an identity batch function that records each call's keys (a copy: the list is valid
    /// only during the call) and, like <c>keys =&gt; Promise.resolve(keys)</c>, returns the very list it was given.
    /// </summary>
    private static (Batcher<T, T> Loader, ConcurrentQueue<T[]> LoadCalls, ManualTimeProvider Time) IdLoader<T>(int maxBatchSize = 64)
    {
        var time = new ManualTimeProvider();
        var loadCalls = new ConcurrentQueue<T[]>();
        var loader = new Batcher<T, T>(
            (keys, _) =>
            {
                loadCalls.Enqueue(keys.ToArray());
                return new ValueTask<IReadOnlyList<T>>(keys);
            },
            Options(time, maxBatchSize));
        return (loader, loadCalls, time);
    }

    /// <summary>DataLoader's evenLoader: odd keys are answered with an error of their own (kept, by key, for identity checks).</summary>
    private static (Batcher<int, int> Loader, ConcurrentQueue<int[]> LoadCalls, ConcurrentDictionary<int, Exception> Errors, ManualTimeProvider Time) EvenLoader()
    {
        var time = new ManualTimeProvider();
        var loadCalls = new ConcurrentQueue<int[]>();
        var errors = new ConcurrentDictionary<int, Exception>();
        var loader = new Batcher<int, int>(
            (batch, _) =>
            {
                var keys = Enumerable.Range(0, batch.Count).Select(i => batch[i]).ToArray();
                loadCalls.Enqueue(keys);
                for (var i = 0; i < keys.Length; i++)
                {
                    if (keys[i] % 2 == 0)
                    {
                        batch.TrySetResult(i, keys[i]);
                    }
                    else
                    {
                        batch.TrySetException(i, errors.GetOrAdd(keys[i], k => new InvalidOperationException($"Odd: {k}")));
                    }
                }

                return default;
            },
            Options(time));
        return (loader, loadCalls, errors, time);
    }

    /// <summary>A loader whose batch function loads its whole key list from <paramref name="deep"/>, and signals once it has.</summary>
    private static (Batcher<string, string> Loader, ConcurrentQueue<string[]> LoadCalls) Nested(Batcher<string[], string[]> deep, TaskCompletionSource submitted, ManualTimeProvider time)
    {
        var loadCalls = new ConcurrentQueue<string[]>();
        var loader = new Batcher<string, string>(
            async (keys, ct) =>
            {
                var copy = keys.ToArray();
                loadCalls.Enqueue(copy);
                var values = deep.SubmitAsync(copy, ct).AsTask();
                submitted.TrySetResult();
                return await values;
            },
            Options(time));
        return (loader, loadCalls);
    }

    /// <summary>Submits <paramref name="keys"/> in one tick and returns their values.</summary>
    private static async Task<string[]> LoadTickAsync(Batcher<string, string> loader, ManualTimeProvider time, params string[] keys)
    {
        var loads = keys.Select(k => loader.SubmitAsync(k).AsTask()).ToArray();
        time.Advance(Tick);
        return await Task.WhenAll(loads).OrHang();
    }
}
