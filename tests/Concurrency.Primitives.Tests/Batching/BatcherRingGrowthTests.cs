using System;
using System.Collections.Concurrent;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>
/// The queue's ring (README, "How it works"): it starts small and doubles, under the lock, while Capacity allows more
/// than it holds. Every item a grown ring admits keeps its place in submit order, none is lost, and a submit that fits
/// under Capacity never waits for room, however far the ring's indices have run.
/// </summary>
public sealed class BatcherRingGrowthTests
{
    /// <summary>
    /// Guards TryClaimLocked and TryGrowRingLocked: 999 items queued behind a held dispatch (the ring starts at 256
    /// cells) are all admitted at once — none waits for room, so none gets a deadline timer of its own — after 400
    /// items have already passed through (the room check counts queued items, not ring indices), and all are
    /// dispatched in submit order.
    /// </summary>
    [Fact]
    public async Task AQueueLongerThanTheRing_GrowsIt_AdmittingEveryItemUnderCapacityAtOnce_InSubmitOrder()
    {
        const int passedThrough = 400;
        const int queuedCount = 999;
        var time = new ManualTimeProvider();
        var order = new ConcurrentQueue<int>();
        var entered = Bounded.NewGate();
        var release = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                if (batch[0] == passedThrough)
                {
                    entered.TrySetResult();
                    await release.Task;
                }

                order.Enqueue(batch[0]);
                batch.TrySetResult(0, batch[0]);
            },
            new BatcherOptions
            {
                MaxBatchSize = 1,
                MaxConcurrency = 1,
                MaxDelay = TimeSpan.Zero,
                Capacity = 1000,
                Timeout = TimeSpan.FromSeconds(30),
                DispatchTimeout = TimeSpan.FromHours(1),
                TimeProvider = time,
            });

        var earlier = Enumerable.Range(0, passedThrough).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();
        (await Task.WhenAll(earlier).OrHang()).Should().Equal(Enumerable.Range(0, passedThrough));
        var held = batcher.SubmitAsync(passedThrough).AsTask();
        await entered.Task.OrHang();

        var queued = Enumerable.Range(passedThrough + 1, queuedCount).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();

        batcher.Count.Should().Be(queuedCount);
        batcher.DebuggerDisplay.Should().Be($"{queuedCount} admitted, {queuedCount} queued, 1 dispatching", "every item fit under Capacity: none waits for room");
        time.ArmedTimers.Should().Be(1, "only the deadline sweep: no caller waited for room (each would have had a timer of its own), and MaxDelay zero needs none");

        release.SetResult();
        (await held.OrHang()).Should().Be(passedThrough);
        (await Task.WhenAll(queued).OrHang()).Should().Equal(Enumerable.Range(passedThrough + 1, queuedCount));
        order.Should().Equal(Enumerable.Range(0, passedThrough + 1 + queuedCount));
    }

    /// <summary>
    /// Guards the ring's sizes: a batcher whose Capacity is 2^20 starts with a ring of a few hundred cells, not one of
    /// 2^20 (8 MiB), and a queue that outgrows it doubles it, rather than jumping to Capacity. Measured as what this
    /// thread allocates to build the batcher and to submit (the ring grows under the submit that finds it full).
    /// </summary>
    [Fact]
    public async Task ARingStartsSmall_AndGrowsByDoubling_NotStraightToCapacity()
    {
        const int capacity = 1 << 20;
        const int submits = 300;
        await using (var warm = NewBatcher(capacity, Bounded.NewGate(), Bounded.NewGate()))
        {
            (await warm.SubmitAsync(-2).AsTask().OrHang()).Should().Be(-2); // the types' statics and code, paid before measuring
        }

        var entered = Bounded.NewGate();
        var release = Bounded.NewGate();
        var before = GC.GetAllocatedBytesForCurrentThread();
        var batcher = NewBatcher(capacity, entered, release);
        var constructed = GC.GetAllocatedBytesForCurrentThread() - before;
        constructed.Should().BeLessThan(64 * 1024, "the first ring holds 256 cells; one of Capacity's 2^20 would take 8 MiB");

        var held = batcher.SubmitAsync(-1).AsTask();
        await entered.Task.OrHang();
        var calls = new Task<int>[submits];
        before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < submits; i++)
        {
            calls[i] = batcher.SubmitAsync(i).AsTask(); // the 257th queued item finds the ring full: it doubles, to 512 cells
        }

        var submitted = GC.GetAllocatedBytesForCurrentThread() - before;

        batcher.Count.Should().Be(submits);
        submitted.Should().BeLessThan(1024 * 1024, "300 items and one doubling of a 256-cell ring take tens of KiB; a ring grown to Capacity would take 8 MiB");
        release.SetResult();
        (await held.OrHang()).Should().Be(-1);
        (await Task.WhenAll(calls).OrHang()).Should().Equal(Enumerable.Range(0, submits));
        await batcher.DisposeAsync();
    }

    /// <summary>Batches of one, on one loop, no bounds (no timers); item -1 holds the dispatch until released.</summary>
    private static Batcher<int, int> NewBatcher(int capacity, TaskCompletionSource entered, TaskCompletionSource release) => new(
        async (batch, _) =>
        {
            if (batch[0] == -1)
            {
                entered.TrySetResult();
                await release.Task;
            }

            batch.TrySetResult(0, batch[0]);
        },
        new BatcherOptions
        {
            MaxBatchSize = 1,
            MaxConcurrency = 1,
            MaxDelay = TimeSpan.Zero,
            Capacity = capacity,
            Timeout = Timeout.InfiniteTimeSpan,
            DispatchTimeout = Timeout.InfiniteTimeSpan,
        });
}
