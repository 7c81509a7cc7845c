using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Benchmarks.HandRolled;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>
/// The UTXO-store incident: a batch dispatch failed part-way, the library recovered the panic, and every caller whose
/// item had not yet been answered waited forever. The hand-rolled batcher does exactly that; the Batcher does not.
/// </summary>
public sealed class BatcherSeedStoryTests
{
    [Fact]
    public async Task HandRolledBatcher_DispatchThrowingPartWay_OrphansTheUnansweredCallers()
    {
        // However the loop happens to cut the four items into batches, each dispatch answers item 0 if it holds it
        // and then throws: items 1 to 3 are never answered.
        var lastDispatched = Bounded.NewGate();
        await using var batcher = new ChannelTcsBatcher<int, int>(
            batch =>
            {
                foreach (var (item, completion) in batch)
                {
                    if (item == 0)
                    {
                        completion.SetResult(item);
                    }
                    else if (item == 3)
                    {
                        lastDispatched.TrySetResult();
                    }
                }

                throw new InvalidOperationException("database stalled");
            },
            maxBatchSize: 4);

        var calls = Enumerable.Range(0, 4).Select(batcher.SubmitAsync).ToArray();
        await lastDispatched.Task.OrHang();

        (await calls[0].OrHang()).Should().Be(0);
        var orphaned = calls.Skip(1).ToArray();
        var all = Task.WhenAll(orphaned);
        var first = await Task.WhenAny(all, WaitBriefly());
        first.Should().NotBeSameAs(all, "the bounded wait runs out while the orphans still wait");
        orphaned.Should().OnlyContain(c => !c.IsCompleted, "nothing will ever complete them: the fault was logged and forgotten");
        SpinWait.SpinUntil(() => batcher.LoggedFaults > 0, Bounded.HangLimit).Should().BeTrue("the dispatch's exception was caught and logged");
    }

    [Fact]
    public async Task Batcher_DispatchThrowingPartWay_ReleasesEveryCaller()
    {
        await using var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                batch.TrySetResult(0, batch[0]);
                throw new InvalidOperationException("database stalled");
            },
            new BatcherOptions { MaxBatchSize = 4, MaxDelay = TimeSpan.FromHours(1) });

        var calls = Enumerable.Range(0, 4).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();

        (await calls[0].OrHang()).Should().Be(0);
        foreach (var call in calls.Skip(1))
        {
            await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchDispatchException>();
        }
    }

    /// <summary>
    /// The bounded wait that shows an orphan: the hand-rolled callers have no deadline, so the test gives them one.
    /// This is the one place a test waits on the clock: it proves that something does NOT happen.
    /// </summary>
    private static Task WaitBriefly() => Task.Delay(TimeSpan.FromMilliseconds(200));
}
