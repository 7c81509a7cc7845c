using System;
using System.Collections;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary>
/// One dispatch loop's batch: its items in submit order, its dispatch token source, and the continuation that observes an
/// asynchronous dispatch. A batcher has at most MaxConcurrency of them, each bound to one loop while it runs; it is the
/// thread-pool work item that runs the loop, and the read-only item list handed to the result-list dispatch form.
/// Only its loop writes it, except the deadline sweep, which takes <see cref="SweepPhase"/> before it touches the items.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001:Types that own disposable fields should be disposable", Justification = "Owned by the batcher for its lifetime; its token source has no timer, so nothing is left to release.")]
internal sealed class BatchCore<TItem, TResult> : PoolWorkItem, IReadOnlyList<TItem>
{
    /// <summary>No batch is being dispatched (or the loop is between its cut and its dispatch).</summary>
    public const int Idle = 0;

    /// <summary>The dispatch runs; the sweep may take the batch (to <see cref="Sweeping"/>).</summary>
    public const int Dispatching = 1;

    /// <summary>The sweep is looking at the items (under the batcher's lock): the loop waits before it finishes the batch.</summary>
    public const int Sweeping = 2;

    /// <summary>The sweep timed the dispatch out: its callers are released and its token source is the sweep's.</summary>
    public const int TimedOut = 3;

    private readonly Batcher<TItem, TResult> _owner;

    /// <summary>The bit of <see cref="Live"/> set when the loop is done with the batch: later counts are stale.</summary>
    public const long LiveClosed = 1L << 32;

    /// <summary>The bits of <see cref="Live"/> that count the batch's callers still waiting.</summary>
    public const long LiveCount = uint.MaxValue;

    private readonly Action _onDispatchCompleted;

    public BatchCore(Batcher<TItem, TResult> owner, int capacity, bool coalescing = false)
    {
        _owner = owner;
        Items = new BatchItem<TItem, TResult>[capacity];
        Uses = new int[capacity];
        Values = new TItem[capacity];
        _onDispatchCompleted = OnDispatchCompleted;
        if (coalescing)
        {
            SlotAnswered = new int[capacity];
            SlotFollowers = new int[capacity];
            Followers = new BatchItem<TItem, TResult>[capacity];
            FollowerUses = new int[capacity];
            FollowerNext = new int[capacity];
            var buckets = 4;
            while (buckets < 2 * capacity)
            {
                buckets <<= 1;
            }

            Buckets = new int[buckets];
        }
    }

    public enum Phase
    {
        Pooled,
        Dispatching,
    }

    public Batcher<TItem, TResult> Owner => _owner;

    public BatchItem<TItem, TResult>[] Items { get; }

    /// <summary>Each item's use (<see cref="BatchItem{TItem, TResult}.Use"/>) when the batch was cut: the dispatch answers that use only.</summary>
    public int[] Uses { get; }

    /// <summary>
    /// The items' values, copied when the batch is cut: what the dispatch reads. An item the dispatch has answered may be
    /// read by its caller, recycled and serving another caller while the dispatch still runs (a dispatch that streams
    /// answers while a bulk call reads its items), so the dispatch never reads the items themselves.
    /// </summary>
    public TItem[] Values { get; }

    public int Count;

    /// <summary>Whether the dispatch call runs (what a <see cref="Batch{TItem, TResult}"/> checks); written by the loop only.</summary>
    public Phase State;

    /// <summary>Changes whenever the batch leaves a phase, so that stale <see cref="Batch{TItem, TResult}"/> values are refused.</summary>
    public int Version;

    /// <summary><see cref="Idle"/>, <see cref="Dispatching"/>, <see cref="Sweeping"/> or <see cref="TimedOut"/>: who may touch the items.</summary>
    public int SweepPhase;

    /// <summary>
    /// 1 when the deadline sweep released every caller of the running batch at their own bound (before its
    /// DispatchTimeout) and cancelled its token as abandoned; written before that cancellation, cleared by the loop once
    /// the sweep is done with the batch. A dispatch that then ends with its cancellation is not a failure.
    /// </summary>
    public int AbandonedBySweep;

    /// <summary>1 while a loop owns this core.</summary>
    public int Busy;

    /// <summary>
    /// When the dispatch of the batch this loop cuts or runs is timed out (a timestamp; <see cref="Batcher{TItem, TResult}"/>'s
    /// NeverTicks-based bound, or <see cref="long.MaxValue"/> while the loop holds no batch). Written before the cut's
    /// claim, so that the sweep, which reads it after its own fence, never misses a dispatch's bound.
    /// </summary>
    public long ActiveDeadline = long.MaxValue;

    public CancellationTokenSource? Cancellation;

    /// <summary>With coalescing: 1 once a slot has been answered (every caller of a slot gets the same answer); else <see langword="null"/>.</summary>
    public int[]? SlotAnswered { get; }

    /// <summary>With coalescing: each slot's first follower (an index into <see cref="Followers"/>), or -1.</summary>
    public int[]? SlotFollowers { get; }

    /// <summary>With coalescing: the callers that share a slot with an earlier caller of an equal item, in the order they were cut.</summary>
    public BatchItem<TItem, TResult>[]? Followers { get; }

    /// <summary>Each follower's use when the batch was cut (as <see cref="Uses"/> is for the slots' first callers).</summary>
    public int[]? FollowerUses { get; }

    /// <summary>The next follower of the same slot, or -1.</summary>
    public int[]? FollowerNext { get; }

    /// <summary>How many of <see cref="Followers"/> the batch holds.</summary>
    public int FollowerCount;

    /// <summary>The first follower of <paramref name="slot"/>, or -1 (always without coalescing).</summary>
    public int FirstFollower(int slot) => SlotFollowers is { } first ? first[slot] : -1;

    /// <summary>
    /// Answers every caller of <paramref name="slot"/> with <paramref name="result"/>, unless the slot was answered
    /// already (every caller of a slot gets the same answer). Returns whether a caller took it.
    /// </summary>
    public bool TrySetSlotResult(int slot, TResult result)
    {
        if (!TryClaimSlot(slot))
        {
            return false;
        }

        var answered = Items[slot].TrySetResult(Uses[slot], result, releaseBatcher: true);
        for (var k = SlotFollowers![slot]; k >= 0; k = FollowerNext![k])
        {
            answered |= Followers![k].TrySetResult(FollowerUses![k], result, releaseBatcher: true);
        }

        return answered;
    }

    /// <summary>With coalescing: takes the one answer of <paramref name="slot"/> (whoever answers it first: the dispatch, or the post-dispatch sweep).</summary>
    public bool TryClaimSlot(int slot) => Interlocked.CompareExchange(ref SlotAnswered![slot], 1, 0) == 0;

    /// <summary>Fails every caller of <paramref name="slot"/> with <paramref name="exception"/>, unless the slot was answered already.</summary>
    public bool TrySetSlotException(int slot, Exception exception)
    {
        if (!TryClaimSlot(slot))
        {
            return false;
        }

        var answered = Items[slot].TrySetException(Uses[slot], exception, releaseBatcher: true);
        for (var k = SlotFollowers![slot]; k >= 0; k = FollowerNext![k])
        {
            answered |= Followers![k].TrySetException(FollowerUses![k], exception, releaseBatcher: true);
        }

        return answered;
    }

    /// <summary>With coalescing: the open-addressing table of slot indices (plus one) by hash, used while a batch is cut.</summary>
    public int[]? Buckets { get; }

    /// <summary>Whether slots may have more than one caller (coalescing is on): answers go through the slot.</summary>
    public bool Coalescing => SlotAnswered is not null;

    /// <summary>
    /// Whether the batch's live callers are counted (<see cref="Live"/>): set at the cut when one of its callers can give
    /// up on its own; the deadline sweep handles the others.
    /// </summary>
    public bool Tracked;

    /// <summary>Counts batches cut by this loop; stamps <see cref="Live"/> and each tracked item (its <c>TrackedEpoch</c>).</summary>
    public int Epoch;

    /// <summary>
    /// For a tracked batch: its epoch (bits 33 and up), <see cref="LiveClosed"/>, and how many of its callers still wait
    /// (<see cref="LiveCount"/>). Whoever counts the last caller gone cancels the dispatch's token; the loop closes the
    /// word when it finishes the batch, and then never reuses a token source that may be being cancelled.
    /// </summary>
    public long Live;

    public ValueTask PendingDispatch;

    public ValueTask<IReadOnlyList<TResult>> PendingResults;

    public long DispatchStarted;

    int IReadOnlyCollection<TItem>.Count => Count;

    public TItem this[int index]
    {
        get
        {
            if (State != Phase.Dispatching)
            {
                throw new InvalidOperationException("This item list is valid only during its dispatch call; copy it if you need it afterwards.");
            }

            if ((uint)index >= (uint)Count)
            {
                throw new ArgumentOutOfRangeException(nameof(index), index, $"The batch holds {Count} item(s).");
            }

            return Values[index];
        }
    }

    public IEnumerator<TItem> GetEnumerator()
    {
        for (var i = 0; i < Count; i++)
        {
            yield return this[i];
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>A token source for the next dispatch: reused while it was never cancelled.</summary>
    public CancellationTokenSource RentCancellation()
    {
#if NET8_0_OR_GREATER
        if (Cancellation is { } existing && existing.TryReset())
        {
            return existing;
        }
#endif
        Cancellation?.Dispose();
        return Cancellation = new CancellationTokenSource();
    }

    /// <summary>Runs (or resumes) this core's dispatch loop on the thread pool.</summary>
    public void Start(bool preferLocal = true) => Dispatch(flowContext: false, preferLocal);

    public void AwaitDispatch() => ContinueWhenCompleted(ref PendingDispatch, _onDispatchCompleted);

    public void AwaitResults() => ContinueWhenCompleted(ref PendingResults, _onDispatchCompleted);

    protected override void Execute() => _owner.RunLoop(this);

    private void OnDispatchCompleted() => _owner.OnAsyncDispatchCompleted(this);
}

