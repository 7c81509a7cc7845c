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
        var dispatched = Bounded.NewGate();
        await using var batcher = new ChannelTcsBatcher<int, int>(
            batch =>
            {
                batch[0].Completion.SetResult(batch[0].Item);
                dispatched.TrySetResult();
                throw new InvalidOperationException("database stalled");
            },
            maxBatchSize: 4);

        var calls = Enumerable.Range(0, 4).Select(batcher.SubmitAsync).ToArray();
        await dispatched.Task.OrHang();

        (await calls[0].OrHang()).Should().Be(0);
        var orphaned = calls.Skip(1).ToArray();
        var all = Task.WhenAll(orphaned);
        var first = await Task.WhenAny(all, WaitBriefly());
        first.Should().NotBeSameAs(all, "the bounded wait runs out while the orphans still wait");
        orphaned.Should().OnlyContain(c => !c.IsCompleted, "nothing will ever complete them: the fault was logged and forgotten");
        batcher.LoggedFaults.Should().BeGreaterThan(0);
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
