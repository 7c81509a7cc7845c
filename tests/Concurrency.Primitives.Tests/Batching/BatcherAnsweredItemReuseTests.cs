using System;
using System.Collections.Generic;
using System.Reflection;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>
/// A dispatch's answer lets go of the batcher's hold on the item in the same step as it claims it: the caller who reads
/// the answer recycles the item at once, and the same thread's next submit reuses it, while the batch that held it is
/// still running. The batch must then never read or answer the item again: the dispatch reads the values copied when
/// the batch was cut, the batch's finish leaves the item's new use alone, and the deadline sweep does not mistake the new
/// use's deadline for the running batch's.
/// </summary>
public sealed class BatcherAnsweredItemReuseTests
{
    private static readonly FieldInfo SourceField = typeof(ValueTask<int>).GetField("_obj", BindingFlags.Instance | BindingFlags.NonPublic)!;

    [Fact]
    public async Task AnItemAnsweredAndReusedWhileItsBatchRuns_LeavesTheDispatchsViewAndTheNewCallerIntact()
    {
        var time = new ManualTimeProvider();
        var answered = Bounded.NewGate();
        var proceed = Bounded.NewGate();
        var seen = new List<int>();
        var batcher = new Batcher<int, int>(
            async (Batch<int, int> batch, CancellationToken _) =>
            {
                if (batch[0] == 1)
                {
                    batch.TrySetResult(0, 10);
                    answered.TrySetResult();
                    await proceed.Task.ConfigureAwait(false);
                    seen.Add(batch[0]);
                    seen.Add(batch.Items[0]);
                    seen.Add(batch.Count);
                }

                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, batch[i] * 10);
                }
            },
            new BatcherOptions { MaxBatchSize = 2, MaxDelay = TimeSpan.FromSeconds(5), TimeProvider = time });

        var first = batcher.SubmitAsync(1);
        var second = batcher.SubmitAsync(2); // full: the batch [1, 2] is cut and dispatched
        await answered.Task.OrHang();

        // The first item is answered; reading it here releases it into this thread's pool, and the next submit from this
        // thread takes it back, while its batch (now waiting on proceed) still lists it.
        first.IsCompleted.Should().BeTrue();
        var item = SourceField.GetValue(first);
        (await first).Should().Be(10);
        var third = batcher.SubmitAsync(3);
        SourceField.GetValue(third).Should().BeSameAs(item, "the caller that read the answer last recycled the item, and this thread's next submit reuses it");

        proceed.TrySetResult();
        (await second.OrHang()).Should().Be(20);
        time.Advance(TimeSpan.FromSeconds(5)); // the third item's batch is due by MaxDelay
        (await third.OrHang()).Should().Be(30, "the running batch's finish left the item's new use (and its ownership) alone");
        seen.Should().Equal(new[] { 1, 1, 2 }, "the dispatch reads the values its batch was cut with, not the reused item's");

        // The pool stays sound: every later item gets its own answer.
        var later = new ValueTask<int>[8];
        for (var i = 0; i < later.Length; i++)
        {
#pragma warning disable CA2012 // each is awaited once, below
            later[i] = batcher.SubmitAsync(100 + i);
#pragma warning restore CA2012
        }

        time.Advance(TimeSpan.FromSeconds(5));
        for (var i = 0; i < later.Length; i++)
        {
            (await later[i].OrHang()).Should().Be((100 + i) * 10);
        }

        await batcher.CloseAsync().OrHang();
    }

    [Fact]
    public async Task ARunningBatchsItemReusedByALaterCaller_DoesNotHideAnEarlierDeadlineFromTheSweep()
    {
        var time = new ManualTimeProvider();
        time.Advance(TimeSpan.FromDays(1));
        var answered = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            (Batch<int, int> batch, CancellationToken token) =>
            {
                if (batch[0] != 1)
                {
                    return default;
                }

                batch.TrySetResult(0, 10);
                answered.TrySetResult();
                return new ValueTask(Bounded.NewGate().Task.WaitAsync(token)); // runs until its callers are gone
            },
            new BatcherOptions
            {
                MaxBatchSize = 3,
                MaxDelay = TimeSpan.FromSeconds(5),
                Timeout = TimeSpan.FromSeconds(10),
                DispatchTimeout = Timeout.InfiniteTimeSpan,
                TimeProvider = time,
            });

        var first = batcher.SubmitAsync(1);                 // deadline +10
        time.Advance(TimeSpan.FromSeconds(1));
        var second = batcher.SubmitAsync(2);                // deadline +11
        time.Advance(TimeSpan.FromSeconds(2));
        var third = batcher.SubmitAsync(3);                 // deadline +13: the batch [1, 2, 3] is cut; its bound is +13
        await answered.Task.OrHang();

        var item = SourceField.GetValue(first);
        (await first).Should().Be(10);
        var reuse = batcher.SubmitAsync(4);                 // the first item's object again, deadline +13, queued
        SourceField.GetValue(reuse).Should().BeSameAs(item);

        time.Advance(TimeSpan.FromSeconds(7));              // +10: the sweep looks at the running batch
        second.IsCompleted.Should().BeFalse("its bound (+11) has not passed");
        time.Advance(TimeSpan.FromSeconds(1));              // +11: the second caller's bound

        second.IsCompleted.Should().BeTrue("the sweep reached the second item: the reused first item's later deadline (+13) belongs to another caller, not to this batch");
        (await second.AsTask().Invoking(s => s.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeTrue();
        third.IsCompleted.Should().BeFalse("its bound is +13");

        time.Advance(TimeSpan.FromSeconds(2));              // +13: the third caller and the reused item's caller
        await third.AsTask().Invoking(t => t.OrHang()).Should().ThrowAsync<BatchTimeoutException>();
        await reuse.AsTask().Invoking(t => t.OrHang()).Should().ThrowAsync<BatchTimeoutException>();
        await batcher.DisposeAsync();
    }
}
