using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Threading.Tasks;
using BenchmarkDotNet.Attributes;
using Concurrency.Primitives.Benchmarks.HandRolled;
using Concurrency.Primitives.Benchmarks.Reporting;

namespace Concurrency.Primitives.Benchmarks;

/// <summary>
/// The DataLoader shape with repeated keys: 64 concurrent callers, each awaiting its own item before the next, 100,000
/// calls in all; batches of up to 16, two dispatches. With <see cref="Duplicates"/> = 50, callers come in pairs that ask
/// for the same keys at the same time (half the calls repeat a key another caller is asking for); with 0 every key is
/// distinct. Time and allocation are per call. The Batcher runs with coalescing on and off; the hand-rolled case puts a
/// <see cref="ConcurrentDictionary{TKey, TValue}"/> of in-flight tasks in front of the hand-rolled batcher.
/// </summary>
[MemoryDiagnoser]
public class BatcherCoalescingBenchmarks
{
    private const int Calls = 100_000;
    private const int Callers = 64;
    private const int BatchSize = 16;
    private const int Dispatches = 2;

    private readonly ConcurrentDictionary<int, Task<int>> _inFlight = new();
    private Batcher<int, int> _coalescing = null!;
    private Batcher<int, int> _plain = null!;
    private ChannelTcsBatcher<int, int> _handRolled = null!;
    private Task<long>[] _callers = null!;

    /// <summary>The share of calls, in percent, that ask for a key another caller asks for at the same time.</summary>
    [ParamsSource(nameof(DuplicateShares))]
    public int Duplicates { get; set; }

    /// <summary>Quick: 50 %; full: 0 and 50 %.</summary>
    public static IEnumerable<int> DuplicateShares => Profile.Pick(quick: new[] { 50 }, full: new[] { 0, 50 });

    [GlobalSetup]
    public void Setup()
    {
        _coalescing = new Batcher<int, int>(
            static (batch, _) =>
            {
                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, batch[i]);
                }

                return default;
            },
            new BatcherOptions<int>
            {
                MaxBatchSize = BatchSize,
                MaxConcurrency = Dispatches,
                MaxDelay = TimeSpan.Zero,
                CoalescingComparer = EqualityComparer<int>.Default,
            });
        _plain = BatcherCases.Ours(BatchSize, Dispatches, 4096);
        _handRolled = BatcherCases.HandRolled(BatchSize, Dispatches);
        _callers = new Task<long>[Callers];
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        await _coalescing.DisposeAsync();
        await _plain.DisposeAsync();
        await _handRolled.DisposeAsync();
    }

    [Case(CaseKind.HandRolled)]
    [Benchmark(Baseline = true, Description = "hand-rolled in-flight dictionary + Channel + TCS", OperationsPerInvoke = Calls)]
    public Task<long> HandRolled() => RunAsync(static (self, key) => new ValueTask<int>(self._inFlight.GetOrAdd(key, self.LoadThenForgetAsync)));

    [Case(CaseKind.Ours)]
    [Benchmark(Description = "Batcher, coalescing", OperationsPerInvoke = Calls)]
    public Task<long> Coalescing() => RunAsync(static (self, key) => self._coalescing.SubmitAsync(key));

    [Case(CaseKind.Ours)]
    [Benchmark(Description = "Batcher, no coalescing", OperationsPerInvoke = Calls)]
    public Task<long> NoCoalescing() => RunAsync(static (self, key) => self._plain.SubmitAsync(key));

    private async Task<int> LoadThenForgetAsync(int key)
    {
        try
        {
            return await _handRolled.SubmitAsync(key);
        }
        finally
        {
            _inFlight.TryRemove(key, out _);
        }
    }

    // In pairs (0 and 1, 2 and 3, ...) with duplicates on: both callers of a pair ask for the same keys at the same time.
    private Task<long> RunAsync(Func<BatcherCoalescingBenchmarks, int, ValueTask<int>> submit) => Duplicates == 50
        ? BatcherCases.RunCallersAsync(this, submit, _callers, Calls, static (caller, share) => (caller & ~1) * share)
        : BatcherCases.RunCallersAsync(this, submit, _callers, Calls, static (caller, share) => caller * share);
}
