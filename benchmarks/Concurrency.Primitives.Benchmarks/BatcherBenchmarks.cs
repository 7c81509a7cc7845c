using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using System.Threading.Tasks.Dataflow;
using BenchmarkDotNet.Attributes;
using Concurrency.Primitives.Benchmarks.Reporting;
using Concurrency.Primitives.Benchmarks.Floors;
using Concurrency.Primitives.Benchmarks.HandRolled;

namespace Concurrency.Primitives.Benchmarks;

/// <summary>
/// 100,000 items submitted, then every result awaited; the dispatch answers each item with a trivial result, so the
/// table shows the batching machinery itself. Time and allocation are per item.
/// </summary>
[MemoryDiagnoser]
public class BatcherBenchmarks
{
    private const int Items = 100_000;

    private Batcher<int, int> _batcher = null!;
    private ChannelTcsBatcher<int, int> _handRolled = null!;
    private BatchBlock<(int Item, TaskCompletionSource<int> Completion)> _batchBlock = null!;
    private SlotArrayBatcher _floor = null!;
    private ValueTask<int>[] _ours = null!;
    private Task<int>[] _theirs = null!;

    [ParamsSource(nameof(BatchSizes))]
    public int BatchSize { get; set; }

    [ParamsSource(nameof(DispatchCounts))]
    public int Dispatches { get; set; }

    /// <summary>Quick: 16 (a DataLoader-sized batch); full: 1, 16 and 64.</summary>
    public static IEnumerable<int> BatchSizes => Profile.BatcherCell(0, Profile.Pick(quick: new[] { 16 }, full: new[] { 1, 16, 64 }));

    /// <summary>Quick: 2 (a handler that overlaps two batches); full: 1, 2 and 4.</summary>
    public static IEnumerable<int> DispatchCounts => Profile.BatcherCell(1, Profile.Pick(quick: new[] { 2 }, full: new[] { 1, 2, 4 }));

    [GlobalSetup]
    public void Setup()
    {
        _batcher = BatcherCases.Ours(BatchSize, Dispatches, Items);
        _handRolled = BatcherCases.HandRolled(BatchSize, Dispatches);
        _batchBlock = BatcherCases.Dataflow(BatchSize, Dispatches);
        _floor = BatcherCases.Floor(Items, BatchSize, Dispatches);
        _ours = new ValueTask<int>[Items];
        _theirs = new Task<int>[Items];
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        await _batcher.DisposeAsync();
        await _handRolled.DisposeAsync();
        _batchBlock.Complete();
    }

    [Case(CaseKind.HandRolled)]
    [Benchmark(Baseline = true, Description = "hand-rolled Channel + TCS", OperationsPerInvoke = Items)]
    public async Task<long> HandRolled()
    {
        for (var i = 0; i < Items; i++)
        {
            _theirs[i] = _handRolled.SubmitAsync(i);
        }

        return await SumAsync(_theirs);
    }

    [Case(CaseKind.Alternative)]
    [Benchmark(Description = "Dataflow BatchBlock + ActionBlock", OperationsPerInvoke = Items)]
    public async Task<long> Dataflow()
    {
        for (var i = 0; i < Items; i++)
        {
            var completion = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
            _batchBlock.Post((i, completion));
            _theirs[i] = completion.Task;
        }

        _batchBlock.TriggerBatch();
        return await SumAsync(_theirs);
    }

    [Case(CaseKind.Ours)]
    [Benchmark(Description = "Batcher", OperationsPerInvoke = Items)]
    public async Task<long> Batcher()
    {
        for (var i = 0; i < Items; i++)
        {
            _ours[i] = _batcher.SubmitAsync(i);
        }

        return await SumAsync(_ours);
    }

    [Case(CaseKind.Floor)]
    [Benchmark(Description = "slot ring, no guarantees (floor)", OperationsPerInvoke = Items)]
    public async Task<long> Floor()
    {
        for (var i = 0; i < Items; i++)
        {
            _ours[i] = _floor.SubmitAsync(i);
        }

        return await SumAsync(_ours);
    }

    private static async Task<long> SumAsync(ValueTask<int>[] pending)
    {
        long sum = 0;
        for (var i = 0; i < pending.Length; i++)
        {
            sum += await pending[i];
            pending[i] = default;
        }

        return sum;
    }

    private static async Task<long> SumAsync(Task<int>[] tasks)
    {
        long sum = 0;
        for (var i = 0; i < tasks.Length; i++)
        {
            sum += await tasks[i];
            tasks[i] = null!;
        }

        return sum;
    }
}
