using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>
/// A dispatch loop that finds nothing due lets go of its slot and its batch core, then looks once more. What it must get
/// right there: a batch that filled while it looked is cut (no submit starts a loop while this one still holds its slot),
/// and the core it left is taken again by one starting loop only (two loops on one core would cut two batches into the
/// same slots, and the running dispatch would lose its callers to the later cut).
/// </summary>
public sealed class BatcherLoopExitTests
{
    /// <summary>
    /// Guards the loop's last look (IsCutDue): a batch that becomes full while the loop decides that the partial batch
    /// it saw is not due yet is cut by that loop as it leaves, not left to the MaxDelay timer. The submit that fills it
    /// starts no loop, because the deciding loop still holds the only slot.
    /// </summary>
    [Fact]
    public async Task ABatchThatFillsWhileTheLoopDecidesItIsNotDue_IsCutAsTheLoopLeaves_NotLeftToTheTimer()
    {
        var clock = new HeldClock();
        var holdFirst = Bounded.NewGate();
        var firstEntered = Bounded.NewGate();
        var batcher = HoldingBatcher(
            heldKey: 1, firstEntered, holdFirst.Task, new BatcherOptions { MaxBatchSize = 2, MaxConcurrency = 1, MaxDelay = TimeSpan.FromSeconds(5), TimeProvider = clock });

        var first = batcher.SubmitAsync(1);  // t = 0: the MaxDelay timer is armed for t = 5 s
        var second = batcher.SubmitAsync(2); // full: cut, and its dispatch held
        await firstEntered.Task.OrHang();
        var third = batcher.SubmitAsync(3);  // a partial batch; the only loop is busy

        // The loop, once the held dispatch returns, looks at [3]: not full, and its MaxDelay has not passed. Hold it at that
        // clock read, fill the batch meanwhile, then let it decide (on what it read: not due) and leave.
        var look = clock.HoldNextTimestamp();
        holdFirst.TrySetResult();
        (await first.OrHang()).Should().Be(10);
        (await second.OrHang()).Should().Be(20);
        await look.Entered.OrHang();
        var fourth = batcher.SubmitAsync(4);
        look.Release();

        // The clock never moves: only the leaving loop's last look can dispatch [3, 4] now.
        (await third.OrHang()).Should().Be(30, "the batch was full when the loop left, so the loop cut it");
        (await fourth.OrHang()).Should().Be(40);
        await batcher.CloseAsync().OrHang();
    }

    [Fact]
    public async Task ACoreLeftByAnIdleLoop_IsTakenByOneLoopOnly_SoTwoConcurrentBatchesEachAnswerTheirOwnCallers()
    {
        var holdFirst = Bounded.NewGate();
        var heldEntered = Bounded.NewGate();
        var batcher = HoldingBatcher(
            heldKey: 2, heldEntered, holdFirst.Task, new BatcherOptions { MaxBatchSize = 1, MaxConcurrency = 2, MaxDelay = TimeSpan.Zero, TimeProvider = new ManualTimeProvider() });

        // One batch through one loop, which then finds nothing to do and lets go of its slot and its core.
        (await batcher.SubmitAsync(1).OrHang()).Should().Be(10);
        SpinWait.SpinUntil(() => BatcherInternals.RunningLoops(batcher) == 0, Bounded.HangLimit).Should().BeTrue("the only loop found no batch due and left");

        // The next loop takes that core back (its dispatch is held); a second loop, started while the first runs, must
        // take a core of its own.
        var held = batcher.SubmitAsync(2);
        await heldEntered.Task.OrHang();
        var second = batcher.SubmitAsync(3);
        (await second.OrHang()).Should().Be(30, "the second batch ran beside the held one, in a core of its own");

        holdFirst.TrySetResult();
        (await held.OrHang()).Should().Be(20, "the held dispatch kept its batch: no later cut went into its core");
        await batcher.CloseAsync().OrHang();
    }

    /// <summary>
    /// Guards where a loop started by a submit is queued (a hint that only the many-callers benchmark measures, so this
    /// test reads it): behind the answered callers while dispatches hold several items, and on the submitting worker's
    /// own queue again after eight single-item dispatches in a row. Not a result: every batch is answered either way.
    /// </summary>
    [Fact]
    public async Task ALoopStartedByASubmit_QueuesBehindTheCallersAfterADispatchOfSeveral_AndOnTheSubmittersQueueAfterEightSingleOnes()
    {
        var hold = Bounded.NewGate();
        var heldEntered = Bounded.NewGate();
        var batcher = HoldingBatcher(
            heldKey: 1, heldEntered, hold.Task, new BatcherOptions { MaxBatchSize = 2, MaxConcurrency = 1, MaxDelay = TimeSpan.Zero, TimeProvider = new ManualTimeProvider() });

        // [1] alone (its submit found the loop free and cut it), held; [2, 3] wait for the only loop and go out together.
        var held = batcher.SubmitAsync(1);
        await heldEntered.Task.OrHang();
        batcher.QueuesLoopsBehindCallers.Should().BeFalse("no dispatch of several items has run yet");
        var second = batcher.SubmitAsync(2);
        var third = batcher.SubmitAsync(3);
        hold.TrySetResult();
        (await held.OrHang()).Should().Be(10);
        (await second.OrHang()).Should().Be(20);
        (await third.OrHang()).Should().Be(30);
        batcher.QueuesLoopsBehindCallers.Should().BeTrue("the last dispatch held two items, whose callers resume and submit again");

        // One caller at a time: every batch holds its one item.
        for (var single = 1; single <= 8; single++)
        {
            (await batcher.SubmitAsync(10 + single).OrHang()).Should().Be(100 + (single * 10));
            batcher.QueuesLoopsBehindCallers.Should().Be(single < 8, $"after {single} single-item dispatches in a row the loops go back to the submitting worker's queue at the eighth");
        }

        var fourth = batcher.SubmitAsync(4);
        (await fourth.OrHang()).Should().Be(40);
        batcher.QueuesLoopsBehindCallers.Should().BeFalse("a single-item dispatch keeps it there");
        await batcher.CloseAsync().OrHang();
    }

    /// <summary>
    /// A batcher whose dispatch answers each key with key × 10, except that the batch whose first key is
    /// <paramref name="heldKey"/> first signals <paramref name="entered"/> and waits for <paramref name="hold"/>.
    /// </summary>
    private static Batcher<int, int> HoldingBatcher(int heldKey, TaskCompletionSource entered, Task hold, BatcherOptions options) => new(
        async (Batch<int, int> batch, CancellationToken _) =>
        {
            if (batch[0] == heldKey)
            {
                entered.TrySetResult();
                await hold.ConfigureAwait(false);
            }

            for (var i = 0; i < batch.Count; i++)
            {
                batch.TrySetResult(i, batch[i] * 10);
            }
        },
        options);
}
