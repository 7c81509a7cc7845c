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
/// with one swap; the caller, reading the answer, recycles the item at once, and its next submit can reuse it while the
/// first batch still runs. Callers awaiting race the publish (a lost wake-up leaves a caller waiting forever, which
/// Coyote reports as a deadlock), and the reused item races the running batch (whose dispatch must keep seeing the
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
