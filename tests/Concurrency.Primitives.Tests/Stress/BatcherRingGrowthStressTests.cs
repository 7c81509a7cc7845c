using System;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Xunit.Abstractions;

namespace Concurrency.Primitives.Tests.Stress;

/// <summary>
/// The batcher's ring grows (it starts at 256 cells and doubles up to Capacity) while submits claim and loops cut: every
/// item must still be answered with its own result, exactly once. Bounded in rounds and time; prints its counts.
/// </summary>
public sealed class BatcherRingGrowthStressTests
{
    private const int BaseRounds = 20;
    private const int Producers = 4;
    private const int ItemsPerProducer = 2_000;
    private readonly ITestOutputHelper _output;

    public BatcherRingGrowthStressTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public async Task TheRingGrowingUnderConcurrentSubmitsAndCuts_AnswersEveryItemWithItsOwnResult()
    {
        var rounds = BaseRounds * StressSettings.Scale;
        var clock = Stopwatch.StartNew();
        long items = 0;
        long batches = 0;
        for (var round = 0; round < rounds; round++)
        {
            var answered = new int[Producers * ItemsPerProducer];
            await using var batcher = new Batcher<int, int>(
                (batch, _) =>
                {
                    Interlocked.Increment(ref batches);
                    for (var i = 0; i < batch.Count; i++)
                    {
                        Interlocked.Increment(ref answered[batch[i]]);
                        batch.TrySetResult(i, batch[i] * 3);
                    }

                    return default;
                },
                new BatcherOptions { MaxBatchSize = 1 + (round % 8), MaxConcurrency = 1 + (round % 3), MaxDelay = TimeSpan.Zero, Capacity = null });

            var producers = Enumerable.Range(0, Producers).Select(p => Task.Run(async () =>
            {
                var pending = new ValueTask<int>[ItemsPerProducer];
                for (var i = 0; i < ItemsPerProducer; i++)
                {
#pragma warning disable CA2012 // each is awaited once, below: the submits must all be in flight before the first await
                    pending[i] = batcher.SubmitAsync((p * ItemsPerProducer) + i);
#pragma warning restore CA2012
                }

                for (var i = 0; i < ItemsPerProducer; i++)
                {
                    var id = (p * ItemsPerProducer) + i;
                    var result = await pending[i];
                    Check(result == id * 3, $"item {id} received {result}");
                }
            })).ToArray();
            await Task.WhenAll(producers).WaitAsync(TimeSpan.FromMinutes(1));
            Check(answered.All(a => a == 1), $"an item was dispatched {answered.Max()} times, or never");
            items += answered.Length;
        }

        _output.WriteLine($"[stress] Batcher ring growth: {rounds} rounds, {items} items in {batches} batches in {clock.Elapsed.TotalSeconds:0.0} s, 0 invariant violations");
    }

    private static void Check(bool condition, string invariant)
    {
        if (!condition)
        {
            throw new InvalidOperationException("Batcher invariant violated: " + invariant);
        }
    }
}
