using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.SystematicTests.Harness;
using Microsoft.Coyote.Specifications;
using Xunit.Abstractions;

namespace Concurrency.Primitives.SystematicTests.Batching;

/// <summary>
/// The item's completion core under Coyote. A dispatch's answer lets go of the batcher's hold in its claim and publishes
/// with a release write; the caller, reading the answer, recycles the item at once, and its next submit can reuse it
/// while the first batch still runs. Callers awaiting race the claim (a lost wake-up leaves a caller waiting forever,
/// which Coyote reports as a deadlock), and the reused item races the running batch (whose dispatch must keep seeing the
/// values it was cut with). Each scenario catches a mutant (<c>Mutants/</c>, run by <c>run-mutants.sh</c>).
/// </summary>
public sealed class BatcherItemReuseSystematicTests
{
    private const uint Iterations = 1_000;
    private readonly ITestOutputHelper _output;

    public BatcherItemReuseSystematicTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void Reuse_CallersResubmittingWhileTheirBatchRuns_GetTheirOwnAnswersAndTheDispatchItsOwnValues()
    {
        CoyoteHarness.Explore(_output, "Batcher item reuse, callers resubmitting while their batch runs", Iterations, ResubmitWhileTheBatchRunsScenarioAsync).ShouldHoldEverywhere();
    }

    [Fact]
    public void Reuse_TwoCallersLappingASmallRing_ReuseItemsInTheirCellsWithoutSharingOne()
    {
        CoyoteHarness.Explore(_output, "Batcher item reuse, two callers lapping a 16-cell ring", Iterations, () => LappingTheRingScenarioAsync(maxBatchSize: 2), interleaveVolatiles: true).ShouldHoldEverywhere();
    }

    [Fact]
    public void Reuse_TwoCallersLappingASmallRingInBatchesOfOne_ReuseItemsInTheirCellsWithoutSharingOne()
    {
        CoyoteHarness.Explore(_output, "Batcher item reuse, two callers lapping a 16-cell ring in batches of one", Iterations, () => LappingTheRingScenarioAsync(maxBatchSize: 1), interleaveVolatiles: true).ShouldHoldEverywhere();
    }

    /// <summary>
    /// Two callers on the pool, each submitting and awaiting 20 items one at a time, through a ring of 16 cells (Capacity
    /// 16; batches of up to <paramref name="maxBatchSize"/>, one dispatch at a time, no delay): 40 indices, so the third lap's submits find items the
    /// second lap left in their cells, while those items' last owners let go of them on the other caller's thread, and the
    /// cells still refer to items the first lap pooled (each caller's pooled item serves its next submit, wherever that
    /// lands). Volatile accesses interleave too: an owner's last release writes the state word that a claim of the cell's
    /// next index reads. Every caller gets its own answer for each item (two callers on one item would see each other's,
    /// or wait forever), and the dispatch answers each item once.
    /// </summary>
    private static async Task LappingTheRingScenarioAsync(int maxBatchSize)
    {
        const int perCaller = 20;
        var answered = new int[2 * perCaller];
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                BatchAnswers.TimesTen(batch, answered);

                return default;
            },
            new BatcherOptions { MaxBatchSize = maxBatchSize, MaxConcurrency = 1, MaxDelay = TimeSpan.Zero, Capacity = 16, TimeProvider = FrozenTimeProvider.Instance });

        async Task<string> CallerAsync(int first)
        {
            for (var i = first; i < 2 * perCaller; i += 2)
            {
                var answer = await batcher.SubmitAsync(i);
                if (answer != i * 10)
                {
                    return $"item {i} got {answer}";
                }
            }

            return "ok";
        }

        var outcomes = await Task.WhenAll(Task.Run(() => CallerAsync(0)), Task.Run(() => CallerAsync(1)));
        await batcher.CloseAsync();

        Specification.Assert(outcomes.All(o => o == "ok"), string.Join("; ", outcomes.Where(o => o != "ok")));
        Specification.Assert(answered.All(a => a == 1), $"Items answered other than once: {string.Join(", ", answered.Select((a, i) => (a, i)).Where(p => p.a != 1).Select(p => $"{p.i} ({p.a} times)"))}.");
    }

    /// <summary>
    /// Two callers, each submitting and awaiting one item and then a second; batches of up to two, one dispatch at a
    /// time, no delay. The dispatch reads its batch, answers the first item, yields (the first caller may now read its
    /// answer and submit again, reusing the item), then reads its batch again and answers the rest. Every caller gets
    /// its own answer for each of its items, and the dispatch sees the same values before and after the yield.
    /// </summary>
    private static async Task ResubmitWhileTheBatchRunsScenarioAsync()
    {
        var changed = 0;
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                var cut = batch.Items.ToArray();
                batch.TrySetResult(0, cut[0] * 10);
                await Task.Yield();
                for (var i = 0; i < cut.Length; i++)
                {
                    if (batch[i] != cut[i])
                    {
                        Interlocked.Increment(ref changed);
                    }
                }

                for (var i = 1; i < cut.Length; i++)
                {
                    batch.TrySetResult(i, cut[i] * 10);
                }
            },
            new BatcherOptions { MaxBatchSize = 2, MaxConcurrency = 1, MaxDelay = TimeSpan.Zero, TimeProvider = FrozenTimeProvider.Instance });

        async Task<string> CallerAsync(int first)
        {
            var answers = new[] { await batcher.SubmitAsync(first), await batcher.SubmitAsync(first + 100) };
            return answers[0] == first * 10 && answers[1] == (first + 100) * 10 ? "ok" : $"caller {first} got {answers[0]} and {answers[1]}";
        }

        var outcomes = await Task.WhenAll(Task.Run(() => CallerAsync(1)), Task.Run(() => CallerAsync(2)));
        await batcher.CloseAsync();

        Specification.Assert(outcomes.All(o => o == "ok"), string.Join("; ", outcomes.Where(o => o != "ok")));
        Specification.Assert(changed == 0, $"A dispatch saw {changed} item value(s) change while it ran: it read an item reused by a later submit.");
    }
}
