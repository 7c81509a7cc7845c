using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using System.Runtime.ExceptionServices;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

#pragma warning disable VSTHRD002 // each answer is read after it was counted (published), on the test's own thread: never a blocking read
#pragma warning disable CA2012 // the tests hold submits' value tasks to read each exactly once, later

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>
/// Invariant 10 of src/Concurrency.Primitives/Batching/README.md, the items a ring's cells keep: from the ring's second
/// lap on, an item whose caller and batch have let go stays in its cell, and the submit that claims the cell's next index
/// reuses it in place; an item still held when its cell comes round is left to its caller, and the cell gets another; an
/// item in a pool, or kept in another cell, is never taken in place by a cell that still refers to it from an earlier use.
/// Each test runs on a thread of its own (whose item cache starts empty), submits and reads synchronously, and waits for
/// the dispatch's answers on a semaphore it releases once per answer. A ring of 16 cells (Capacity 16), batches of up to
/// four, and of one (at a MaxBatchSize of one with several dispatches at once, cells keep no items: the second test).
/// </summary>
public sealed class BatcherRingCellReuseTests
{
    private const int Ring = 16;
    private static readonly FieldInfo SourceField = typeof(ValueTask<int>).GetField("_obj", BindingFlags.Instance | BindingFlags.NonPublic)!;

    /// <summary>
    /// Guards the reuse in place: with one caller submitting and reading one item at a time, the first lap's items go back
    /// to the reading thread's pool (the next submit takes the same one), and from the third lap on every index's item is
    /// the item its cell's index a lap earlier used: no pool, no new item. At a MaxBatchSize of one too, with one dispatch
    /// at a time.
    /// </summary>
    [Theory]
    [InlineData(4)]
    [InlineData(1)]
    public void FromTheThirdLap_EachSubmitReusesTheItemItsCellsLastIndexUsed(int maxBatchSize)
    {
        FreshThread.Run(() =>
        {
            using var ring = new RingBatcher(maxBatchSize);
            var items = new object[Ring * 4];
            for (var i = 0; i < items.Length; i++)
            {
                var pending = ring.Batcher.SubmitAsync(i);
                items[i] = SourceField.GetValue(pending)!;
                ring.ReadAnswer(pending).Should().Be(i * 10);
            }

            items[1].Should().BeSameAs(items[0], "in the first lap a read item goes back to the reading thread's pool, and its next submit takes it");
            for (var i = 2 * Ring; i < items.Length; i++)
            {
                items[i].Should().BeSameAs(items[i - Ring], $"index {i}'s cell kept the item index {i - Ring} used, read and let go: the submit reuses it in place");
            }

            items.Skip(Ring).Take(Ring).Should().OnlyHaveUniqueItems("from the second lap on, each cell keeps an item of its own");
        });
    }

    /// <summary>
    /// Guards the exception for batches of one with several dispatches at once: there every read item goes back to the
    /// pool, past the first lap too (one caller submitting and reading one item at a time reuses the same item
    /// throughout), and no cell keeps one.
    /// </summary>
    [Fact]
    public void AtAMaxBatchSizeOfOneWithSeveralDispatches_ReadItemsGoBackToThePool_PastTheFirstLapToo()
    {
        FreshThread.Run(() =>
        {
            using var ring = new RingBatcher(maxBatchSize: 1, maxConcurrency: 2);
            var items = new object[Ring * 4];
            for (var i = 0; i < items.Length; i++)
            {
                var pending = ring.Batcher.SubmitAsync(i);
                items[i] = SourceField.GetValue(pending)!;
                ring.ReadAnswer(pending).Should().Be(i * 10);
            }

            items.Distinct().Should().ContainSingle("each read item is the next submit's, from the reading thread's pool, lap after lap");
        });
    }

    /// <summary>
    /// Guards the item still held when its cell comes round: a caller that has not read its answer keeps its item (the
    /// cell's next index gets another, and each caller reads its own answer), the cell then keeps the newcomer, and the
    /// held item, once read, goes back to the pool. (Each
    /// submit claims the next index: value i is index i throughout.)
    /// </summary>
    [Fact]
    public void AnItemWhoseCallerHasNotReadItsAnswer_IsNotReusedWhenItsCellComesRound_AndEachCallerGetsItsOwnAnswer()
    {
        FreshThread.Run(() =>
        {
            using var ring = new RingBatcher();
            for (var i = 0; i < 2 * Ring; i++)
            {
                ring.ReadAnswer(ring.Batcher.SubmitAsync(i)).Should().Be(i * 10);
            }

            var held = ring.Batcher.SubmitAsync(2 * Ring); // cell 0, third lap: the item index 16 used, in place
            var heldItem = SourceField.GetValue(held);
            ring.WaitForAnswers(1); // answered, not read: its caller still holds it
            for (var i = (2 * Ring) + 1; i < 3 * Ring; i++)
            {
                ring.ReadAnswer(ring.Batcher.SubmitAsync(i)).Should().Be(i * 10);
            }

            var next = ring.Batcher.SubmitAsync(3 * Ring); // cell 0 again
            var nextItem = SourceField.GetValue(next);
            nextItem.Should().NotBeSameAs(heldItem, "the cell's item is still held by the caller that has not read its answer");
            ring.ReadAnswer(next).Should().Be(3 * Ring * 10);
            held.Result.Should().Be(2 * Ring * 10, "the caller that held its item reads its own answer, not the newcomer's");

            for (var i = (3 * Ring) + 1; i < 4 * Ring; i++)
            {
                ring.ReadAnswer(ring.Batcher.SubmitAsync(i)).Should().Be(i * 10);
            }

            var after = ring.Batcher.SubmitAsync(4 * Ring); // cell 0, the lap after: the newcomer, kept there
            SourceField.GetValue(after).Should().BeSameAs(nextItem, "the cell keeps the item written into it, not the one its caller held past the lap");
            ring.ReadAnswer(after).Should().Be(4 * Ring * 10);

            // No submit since has rented (each reused its cell's item): the held item, read after its cell moved on, went
            // back to this thread's pool, and is the next one rented here.
            BatchItem<int, int>? returned = null;
            BatchItem<int, int>.Rent(ring.Batcher, ref returned).Should().BeSameAs(heldItem, "an item read after its cell took another goes back to the pool");
        });
    }

    /// <summary>
    /// Guards the flag that tells an item kept in its cell from a pooled one: the first lap's items, read and pooled, are
    /// still referred to by their cells when the second lap claims them. Reused in place from there while the pool also
    /// holds them, the third lap's submits (whose cells' items are still held) would rent the very items the second lap's
    /// callers hold: two callers on one item. Every item in flight is distinct, and every caller reads its own answer.
    /// </summary>
    [Fact]
    public void APooledItemACellStillRefersTo_IsNotTakenInPlace_SoNoTwoCallersShareAnItem()
    {
        FreshThread.Run(() =>
        {
            using var ring = new RingBatcher();
            var firstLap = Enumerable.Range(0, Ring).Select(i => ring.Batcher.SubmitAsync(i)).ToArray();
            ring.WaitForAnswers(Ring);
            for (var i = 0; i < Ring; i++)
            {
                firstLap[i].Result.Should().Be(i * 10); // read: pooled on this thread (the first lap's items are not kept)
            }

            var inFlight = new List<ValueTask<int>>();
            for (var i = Ring; i < 2 * Ring; i++)
            {
                inFlight.Add(ring.Batcher.SubmitAsync(i));
            }

            ring.WaitForAnswers(Ring); // the second lap is cut and answered, not read: its cells' items are held
            for (var i = 2 * Ring; i < 3 * Ring; i++)
            {
                inFlight.Add(ring.Batcher.SubmitAsync(i));
            }

            inFlight.Select(p => SourceField.GetValue(p)).Should().OnlyHaveUniqueItems("each caller in flight has an item of its own");
            ring.WaitForAnswers(Ring);
            for (var i = 0; i < inFlight.Count; i++)
            {
                inFlight[i].Result.Should().Be((Ring + i) * 10);
            }
        });
    }

    /// <summary>A batcher of a 16-cell ring (Capacity 16) whose dispatch answers each item with ten times its value, counting answers.</summary>
    private sealed class RingBatcher : IDisposable
    {
        private readonly SemaphoreSlim _answers = new(0);

        public RingBatcher(int maxBatchSize = 4, int maxConcurrency = 1)
        {
            Batcher = new Batcher<int, int>(
                (batch, _) =>
                {
                    for (var i = 0; i < batch.Count; i++)
                    {
                        batch.TrySetResult(i, batch[i] * 10);
                        _answers.Release();
                    }

                    return default;
                },
                new BatcherOptions { MaxBatchSize = maxBatchSize, MaxConcurrency = maxConcurrency, MaxDelay = TimeSpan.Zero, Capacity = Ring });
        }

        public Batcher<int, int> Batcher { get; }

        /// <summary>Waits for <paramref name="count"/> more answers (each is published before it is counted).</summary>
        public void WaitForAnswers(int count)
        {
            for (var i = 0; i < count; i++)
            {
                _answers.Wait(Bounded.HangLimit).Should().BeTrue("the dispatch answers every item");
            }
        }

        /// <summary>Waits for one more answer, then reads <paramref name="pending"/>'s (the only one in flight).</summary>
        public int ReadAnswer(ValueTask<int> pending)
        {
            WaitForAnswers(1);
            return pending.Result;
        }

        public void Dispose()
        {
            Batcher.Dispose();
            _answers.Dispose();
        }
    }
}
