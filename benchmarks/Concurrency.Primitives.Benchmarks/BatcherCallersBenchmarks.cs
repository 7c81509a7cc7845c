using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using System.Threading.Tasks.Dataflow;
using BenchmarkDotNet.Attributes;
using Concurrency.Primitives.Benchmarks.Floors;
using Concurrency.Primitives.Benchmarks.HandRolled;
using Concurrency.Primitives.Benchmarks.Reporting;

namespace Concurrency.Primitives.Benchmarks;

/// <summary>
/// The DataLoader shape: <see cref="Callers"/> concurrent callers, each submitting one item and awaiting its answer
/// before the next, 100,000 items in all; batches of up to 16, two dispatches at once, dispatched as soon as a slot is
/// free. With one caller every batch holds one item (the latency of one round trip); with 64 the batches fill while a
/// dispatch runs. Time and allocation are per item.
/// </summary>
/// <remarks>
/// Dataflow's <c>BatchBlock</c> has no time trigger: a caller that awaits its own item would wait forever for a batch
/// that never fills, so each post is followed by <c>TriggerBatch</c> (which cuts whatever is queued).
/// </remarks>
[MemoryDiagnoser]
public class BatcherCallersBenchmarks
{
    private const int Items = 100_000;
    private const int BatchSize = 16;
    private const int Dispatches = 2;

    private Batcher<int, int> _batcher = null!;
    private ChannelTcsBatcher<int, int> _handRolled = null!;
    private BatchBlock<(int Item, TaskCompletionSource<int> Completion)> _batchBlock = null!;
    private SlotArrayBatcher _floor = null!;
    private Task<long>[] _callers = null!;

    [ParamsSource(nameof(CallerCounts))]
    public int Callers { get; set; }

    /// <summary>Quick: 64 callers; full: 1 and 64.</summary>
    public static IEnumerable<int> CallerCounts => Profile.Pick(quick: new[] { 64 }, full: new[] { 1, 64 });

    [GlobalSetup]
    public void Setup()
    {
        _batcher = BatcherCases.Ours(BatchSize, Dispatches, 4096);
        _handRolled = BatcherCases.HandRolled(BatchSize, Dispatches);
        _batchBlock = BatcherCases.Dataflow(BatchSize, Dispatches);
        _floor = BatcherCases.Floor(Items, BatchSize, Dispatches);
        _callers = new Task<long>[Callers];
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
    public Task<long> HandRolled() => RunAsync(static (self, item) => new ValueTask<int>(self._handRolled.SubmitAsync(item)));

    [Case(CaseKind.Alternative)]
    [Benchmark(Description = "Dataflow BatchBlock + ActionBlock", OperationsPerInvoke = Items)]
    public Task<long> Dataflow() => RunAsync(static (self, item) =>
    {
        var completion = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        self._batchBlock.Post((item, completion));
        self._batchBlock.TriggerBatch();
        return new ValueTask<int>(completion.Task);
    });

    [Case(CaseKind.Ours)]
    [Benchmark(Description = "Batcher", OperationsPerInvoke = Items)]
    public Task<long> Batcher() => RunAsync(static (self, item) => self._batcher.SubmitAsync(item));

    [Case(CaseKind.Floor)]
    [Benchmark(Description = "slot ring, no guarantees (floor)", OperationsPerInvoke = Items)]
    public Task<long> Floor() => RunAsync(static (self, item) => self._floor.SubmitAsync(item));

    private Task<long> RunAsync(Func<BatcherCallersBenchmarks, int, ValueTask<int>> submit) =>
        BatcherCases.RunCallersAsync(this, submit, _callers, Items, static (caller, share) => caller * share);
}
