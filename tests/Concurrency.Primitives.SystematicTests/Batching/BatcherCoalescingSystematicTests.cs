using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.SystematicTests.Harness;
using Microsoft.Coyote.Specifications;
using Xunit.Abstractions;

namespace Concurrency.Primitives.SystematicTests.Batching;

/// <summary>
/// Coalescing and abandoned dispatches under Coyote: callers of one item sharing a slot race their own cancellations
/// and the dispatch's answer; a batch whose every caller gives up races the end of its dispatch and the next batch,
/// which must never inherit the cancellation; a caller giving up while its batch is cut must still be counted. The
/// coalescing scenario and the cut scenario each catch a mutant (<c>Mutants/</c>); the next-batch scenario's mutant has no
/// step Coyote can interleave (see <c>run-mutants.sh</c>).
/// </summary>
public sealed class BatcherCoalescingSystematicTests
{
    private const uint Iterations = 1_000;
    private readonly ITestOutputHelper _output;

    public BatcherCoalescingSystematicTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void Coalescing_CallersOfOneSlotRacingCancellationAndTheAnswer_AreEachCompletedOnceWithTheSlotsAnswer()
    {
        CoyoteHarness.Explore(_output, "Batcher coalescing, callers of one slot racing cancellation and the answer", Iterations, CoalescedCallersScenarioAsync).ShouldHoldEverywhere();
    }

    [Fact]
    public void Abandonment_TheLastCallerGivingUpRacingTheDispatchsEnd_NeverCancelsTheNextBatch()
    {
        CoyoteHarness.Explore(_output, "Batcher abandoned dispatch, the last caller giving up racing the dispatch's end", Iterations, AbandonmentRacingTheNextBatchScenarioAsync).ShouldHoldEverywhere();
    }

    [Fact]
    public void Abandonment_ACallerGivingUpWhileItsBatchIsCut_IsCountedAndCancelsTheDispatch()
    {
        CoyoteHarness.Explore(_output, "Batcher abandoned dispatch, a caller giving up while its batch is cut", Iterations, GivingUpWhileCutScenarioAsync).ShouldHoldEverywhere();
    }

    /// <summary>
    /// Two callers of one batch, both cancelling at any point: before the cut (left out), while it is cut (before or
    /// after the cut stamps them), or during the dispatch. The dispatch waits for nothing but its token, so a caller that
    /// gave up without being counted leaves it waiting forever, which Coyote reports as a deadlock.
    /// </summary>
    private static async Task GivingUpWhileCutScenarioAsync()
    {
        var batcher = new Batcher<int, int>(
            async (_, token) =>
            {
                var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                using (token.Register(() => cancelled.TrySetResult()))
                {
                    await cancelled.Task;
                }
            },
            new BatcherOptions { MaxBatchSize = 2, MaxConcurrency = 1, MaxDelay = TimeSpan.Zero, TimeProvider = FrozenTimeProvider.Instance });
        using var one = new CancellationTokenSource();
        using var two = new CancellationTokenSource();

        var calls = new[] { batcher.SubmitAsync(1, one.Token).AsTask(), batcher.SubmitAsync(2, two.Token).AsTask() };
        await Task.WhenAll(Task.Run(one.CancelAsync), Task.Run(two.CancelAsync));
        var outcomes = await Task.WhenAll(calls.Select(Outcome));
        await batcher.CloseAsync();

        Specification.Assert(outcomes.All(o => o == -1), $"The callers received {string.Join(", ", outcomes)}; the dispatch answers nobody.");
    }

    /// <summary>
    /// Four callers of item 7 (two of them cancel while the batch is cut and dispatched) and one of item 8, batches of up
    /// to five, no delay. The dispatch answers each slot once, after a yield. Every caller gets exactly one outcome: a
    /// caller that did not cancel gets its item's answer; one that cancelled gets the answer or its cancellation; and a
    /// slot's answer reaches only callers of that slot.
    /// </summary>
    private static async Task CoalescedCallersScenarioAsync()
    {
        var slotAnswers = new int[10];
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                await Task.Yield();
                for (var i = 0; i < batch.Count; i++)
                {
                    if (batch.TrySetResult(i, batch[i] * 10))
                    {
                        Interlocked.Increment(ref slotAnswers[batch[i]]);
                    }
                }
            },
            new BatcherOptions<int>
            {
                MaxBatchSize = 5,
                MaxConcurrency = 1,
                MaxDelay = TimeSpan.Zero,
                TimeProvider = FrozenTimeProvider.Instance,
                CoalescingComparer = EqualityComparer<int>.Default,
            });
        using var first = new CancellationTokenSource();
        using var third = new CancellationTokenSource();

        var calls = new[]
        {
            Task.Run(() => Outcome(batcher.SubmitAsync(7, first.Token).AsTask())),
            Task.Run(() => Outcome(batcher.SubmitAsync(7).AsTask())),
            Task.Run(() => Outcome(batcher.SubmitAsync(7, third.Token).AsTask())),
            Task.Run(() => Outcome(batcher.SubmitAsync(8).AsTask())),
            Task.Run(() => Outcome(batcher.SubmitAsync(7).AsTask())),
        };
        var cancellers = new[] { Task.Run(first.CancelAsync), Task.Run(third.CancelAsync) };
        var outcomes = await Task.WhenAll(calls);
        await Task.WhenAll(cancellers);
        await batcher.CloseAsync();

        Specification.Assert(outcomes[1] == 70 && outcomes[4] == 70, $"A caller of 7 that never cancelled received {outcomes[1]} / {outcomes[4]}.");
        Specification.Assert(outcomes[0] is 70 or -1 && outcomes[2] is 70 or -1, $"A cancelling caller of 7 received {outcomes[0]} / {outcomes[2]}.");
        Specification.Assert(outcomes[3] == 80, $"The caller of 8 received {outcomes[3]}.");
        Specification.Assert(slotAnswers[8] == 1, $"Item 8 was answered {slotAnswers[8]} times.");
        Specification.Assert(slotAnswers[7] is >= 1 and <= 4, $"Item 7's slots were answered {slotAnswers[7]} times.");
    }

    /// <summary>
    /// Batches of one. The first caller cancels while its batch is dispatched (its dispatch returns after a yield,
    /// whatever its token says), so its dispatch is abandoned just as it ends; a second caller's batch follows on the same
    /// loop. The second dispatch must run with a live token from start to end: an abandoned batch's token source,
    /// cancelled late by the caller that gave up last, must never be the next batch's.
    /// </summary>
    private static async Task AbandonmentRacingTheNextBatchScenarioAsync()
    {
        var secondSawCancellation = false;
        var batcher = new Batcher<int, int>(
            async (batch, token) =>
            {
                if (batch[0] == 1)
                {
                    await Task.Yield();
                    batch.TrySetResult(0, 10);
                    return;
                }

                var before = token.IsCancellationRequested;
                await Task.Yield();
                secondSawCancellation = before || token.IsCancellationRequested;
                batch.TrySetResult(0, batch[0] * 10);
            },
            new BatcherOptions { MaxBatchSize = 1, MaxConcurrency = 1, MaxDelay = TimeSpan.Zero, TimeProvider = FrozenTimeProvider.Instance });
        using var leaving = new CancellationTokenSource();

        var gone = batcher.SubmitAsync(1, leaving.Token).AsTask();
        var canceller = Task.Run(leaving.CancelAsync);
        var firstOutcome = await Outcome(gone);
        var second = await Outcome(batcher.SubmitAsync(2).AsTask());
        await canceller;
        await batcher.CloseAsync();

        Specification.Assert(firstOutcome is 10 or -1, $"The first caller received {firstOutcome}.");
        Specification.Assert(second == 20, $"The second caller received {second}.");
        Specification.Assert(!secondSawCancellation, "The second batch's dispatch token was cancelled: it inherited the abandoned batch's token source.");
    }

    /// <summary>The caller's outcome: its result, or -1 for a cancellation.</summary>
    private static async Task<int> Outcome(Task<int> call)
    {
        try
        {
            return await call;
        }
        catch (OperationCanceledException)
        {
            return -1;
        }
    }
}
