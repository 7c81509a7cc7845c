using System;
using System.Threading.Tasks;
using System.Threading.Tasks.Dataflow;
using Concurrency.Primitives.Benchmarks.Floors;
using Concurrency.Primitives.Benchmarks.HandRolled;

namespace Concurrency.Primitives.Benchmarks;

/// <summary>The four batchers the batcher classes compare, each answering every item with itself (the machinery alone).</summary>
internal static class BatcherCases
{
    public static Batcher<int, int> Ours(int batchSize, int dispatches, int? capacity) => new(
        static (batch, _) =>
        {
            for (var i = 0; i < batch.Count; i++)
            {
                batch.TrySetResult(i, batch[i]);
            }

            return default;
        },
        new BatcherOptions { MaxBatchSize = batchSize, MaxConcurrency = dispatches, MaxDelay = TimeSpan.Zero, Capacity = capacity });

    public static ChannelTcsBatcher<int, int> HandRolled(int batchSize, int dispatches) => new(
        static batch =>
        {
            foreach (var (item, completion) in batch)
            {
                completion.TrySetResult(item);
            }

            return Task.CompletedTask;
        },
        batchSize,
        dispatches);

    /// <summary>A <c>BatchBlock</c> linked to an <c>ActionBlock</c> that answers each batch.</summary>
    public static BatchBlock<(int Item, TaskCompletionSource<int> Completion)> Dataflow(int batchSize, int dispatches)
    {
        var batchBlock = new BatchBlock<(int Item, TaskCompletionSource<int> Completion)>(batchSize);
        var actionBlock = new ActionBlock<(int Item, TaskCompletionSource<int> Completion)[]>(
            static batch =>
            {
                foreach (var (item, completion) in batch)
                {
                    completion.TrySetResult(item);
                }
            },
            new ExecutionDataflowBlockOptions { MaxDegreeOfParallelism = dispatches });
        batchBlock.LinkTo(actionBlock);
        return batchBlock;
    }

    public static SlotArrayBatcher Floor(int capacity, int batchSize, int dispatches) => new(
        static (slots, first, count, mask) =>
        {
            for (var i = 0; i < count; i++)
            {
                var slot = slots[(first + i) & mask];
                slot.SetResult(slot.Value);
            }
        },
        capacity,
        batchSize,
        dispatches);

    /// <summary>
    /// Runs <paramref name="callers"/>.Length concurrent callers on the pool, each submitting its share of
    /// <paramref name="items"/> keys one at a time and awaiting each answer before the next (the DataLoader shape).
    /// Caller <c>c</c> asks for the keys from <paramref name="firstKey"/>(c, share) on.
    /// </summary>
    public static async Task<long> RunCallersAsync<TSelf>(TSelf self, Func<TSelf, int, ValueTask<int>> submit, Task<long>[] callers, int items, Func<int, int, int> firstKey)
    {
        var perCaller = items / callers.Length;
        for (var c = 0; c < callers.Length; c++)
        {
            callers[c] = CallerAsync(self, submit, firstKey(c, perCaller), c == callers.Length - 1 ? items - (c * perCaller) : perCaller);
        }

        long sum = 0;
        foreach (var caller in callers)
        {
            sum += await caller;
        }

        return sum;
    }

    private static async Task<long> CallerAsync<TSelf>(TSelf self, Func<TSelf, int, ValueTask<int>> submit, int first, int count)
    {
        await Task.Yield(); // every caller runs on the pool, as request handlers do
        long sum = 0;
        for (var i = first; i < first + count; i++)
        {
            sum += await submit(self, i);
        }

        return sum;
    }
}
