using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using static Concurrency.Primitives.Tests.TestSupport.BatcherHandlers;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>
/// Invariants 13 and 14 of src/Concurrency.Primitives/Batching/README.md at their edges: a batch of many distinct items
/// (the cut's slot table), a slot failed after its first caller left (the answer's report), and callers that give up
/// while their batch is being cut. The coalescing comparer runs inside the cut, on the cutting thread, which makes it
/// a deterministic hook into that moment.
/// </summary>
public sealed class BatcherCoalescingEdgeTests
{
    /// <summary>
    /// Guards the cut's slot table size: a batch of 15 callers with 14 distinct items gets 14 slots (the table never
    /// fills up). The batch is partial, so a loop cuts it on the thread pool when MaxDelay passes.
    /// </summary>
    [Fact]
    public async Task ABatchOfManyDistinctItems_GetsASlotForEach_AndAnswersEveryCaller()
    {
        var time = new ManualTimeProvider();
        var slots = Bounded.NewGate<int>();
        var batcher = new Batcher<int, int>(
            (IReadOnlyList<int> items, CancellationToken _) =>
            {
                slots.TrySetResult(items.Count);
                return new ValueTask<IReadOnlyList<int>>(items.Select(item => item * 10).ToArray());
            },
            new BatcherOptions<int> { MaxBatchSize = 16, MaxDelay = TimeSpan.FromSeconds(1), TimeProvider = time, CoalescingComparer = EqualityComparer<int>.Default });
        var items = Enumerable.Range(1, 14).Append(3).ToArray();

        var calls = items.Select(item => batcher.SubmitAsync(item).AsTask()).ToArray();
        time.Advance(TimeSpan.FromSeconds(1)); // MaxDelay: a loop cuts the batch, on the thread pool

        (await slots.Task.OrHang()).Should().Be(14);
        (await Task.WhenAll(calls).OrHang()).Should().Equal(items.Select(item => item * 10));
    }

    /// <summary>
    /// Guards what TrySetException reports for a slot: when its first caller has left but a follower still waits, the
    /// follower takes the failure, and the call reports that the slot was answered.
    /// </summary>
    [Fact]
    public async Task FailingASlotWhoseFirstCallerLeft_ReachesItsFollower_AndReportsTheSlotAnswered()
    {
        var entered = Bounded.NewGate();
        var release = Bounded.NewGate();
        bool? answered = null;
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                entered.TrySetResult();
                await release.Task;
                answered = batch.TrySetException(0, new InvalidOperationException("no such key"));
            },
            new BatcherOptions<int> { MaxBatchSize = 2, MaxDelay = TimeSpan.FromHours(1), CoalescingComparer = EqualityComparer<int>.Default });
        using var leaving = new CancellationTokenSource();

        var gone = batcher.SubmitAsync(7, leaving.Token).AsTask(); // the slot's first caller
        var follower = batcher.SubmitAsync(7).AsTask();            // shares its slot
        await entered.Task.OrHang();
        await leaving.CancelAsync();
        await gone.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        release.SetResult();

        (await follower.Invoking(c => c.OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Message.Should().Be("no such key");
        await batcher.CloseAsync().OrHang(); // the dispatch has returned, and recorded what its call reported
        answered.Should().BeTrue("a caller of the slot, its follower, took the failure");
    }

    /// <summary>
    /// Guards the cut's count of callers who gave up before it stamped them (invariant 14): when every caller of a batch
    /// gives up while it is cut, each one (a slot's first caller and its follower) is counted, the dispatch is abandoned,
    /// and it is never called; that is no fault.
    /// </summary>
    [Fact]
    public async Task CallersWhoAllGiveUpWhileTheirBatchIsCut_AreCounted_AndTheDispatchIsNeverCalled()
    {
        var name = "cut-" + Guid.NewGuid().ToString("N");
        using var abandoned = new MetricCollector<long>(meterScope: null, ConcurrencyPrimitivesTelemetry.MeterName, "concurrency.primitives.batcher.dispatch.abandoned");
        using var faults = new MetricCollector<long>(meterScope: null, ConcurrencyPrimitivesTelemetry.MeterName, "concurrency.primitives.batcher.dispatch.faults");
        var logger = new RecordingLogger();
        using var one = new CancellationTokenSource();
        using var two = new CancellationTokenSource();
        var dispatches = 0;
        var batcher = new Batcher<int, int>(
            (IReadOnlyList<int> items, CancellationToken _) =>
            {
                Interlocked.Increment(ref dispatches);
                return new ValueTask<IReadOnlyList<int>>(items.ToArray());
            },
            new BatcherOptions<int>
            {
                Name = name,
                MaxBatchSize = 2,
                MaxDelay = TimeSpan.FromHours(1),
                Logger = logger,
                CoalescingComparer = new HookedComparer(() => CancelBoth(one, two)), // runs inside the cut, after the cancelled items were looked for
            });

        var first = batcher.SubmitAsync(5, one.Token).AsTask();
        var second = batcher.SubmitAsync(5, two.Token).AsTask(); // fills the batch: cut here, where the comparer cancels both callers
        await first.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        await second.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        await batcher.CloseAsync().OrHang();

        Volatile.Read(ref dispatches).Should().Be(0, "every caller had gone before the dispatch could start: there is nobody to dispatch for");
        Values(abandoned, name).Should().Equal(1);
        Values(faults, name).Should().BeEmpty();
        logger.Entries.Should().ContainSingle(e => e.EventId == 3009);
        logger.Entries.Should().NotContain(e => e.Level >= LogLevel.Warning);
    }

    private static void CancelBoth(CancellationTokenSource one, CancellationTokenSource two)
    {
        one.Cancel();
        two.Cancel();
    }


    /// <summary>Compares ints, and runs an action at its first hash: a hook into the moment a batch is cut.</summary>
    private sealed class HookedComparer(Action onFirstHash) : IEqualityComparer<int>
    {
        private int _hashes;

        public bool Equals(int x, int y) => x == y;

        public int GetHashCode(int obj)
        {
            if (Interlocked.Increment(ref _hashes) == 1)
            {
                onFirstHash();
            }

            return obj;
        }
    }
}
