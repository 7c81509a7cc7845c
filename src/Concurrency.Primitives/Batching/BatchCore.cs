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
    private readonly Action _onDispatchCompleted;

    public BatchCore(Batcher<TItem, TResult> owner, int capacity)
    {
        _owner = owner;
        Items = new BatchItem<TItem, TResult>[capacity];
        Uses = new int[capacity];
        _onDispatchCompleted = OnDispatchCompleted;
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

    public int Count;

    /// <summary>Whether the dispatch call runs (what a <see cref="Batch{TItem, TResult}"/> checks); written by the loop only.</summary>
    public Phase State;

    /// <summary>Changes whenever the batch leaves a phase, so that stale <see cref="Batch{TItem, TResult}"/> values are refused.</summary>
    public int Version;

    /// <summary><see cref="Idle"/>, <see cref="Dispatching"/>, <see cref="Sweeping"/> or <see cref="TimedOut"/>: who may touch the items.</summary>
    public int SweepPhase;

    /// <summary>1 while a loop owns this core.</summary>
    public int Busy;

    /// <summary>
    /// When the dispatch of the batch this loop cuts or runs is timed out (a timestamp; <see cref="Batcher{TItem, TResult}"/>'s
    /// NeverTicks-based bound, or <see cref="long.MaxValue"/> while the loop holds no batch). Written before the cut's
    /// claim, so that the sweep, which reads it after its own fence, never misses a dispatch's bound.
    /// </summary>
    public long ActiveDeadline = long.MaxValue;

    public CancellationTokenSource? Cancellation;

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

            return Items[index].Value;
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
    public void Start() => Dispatch(flowContext: false);

    public void AwaitDispatch() => ContinueWhenCompleted(ref PendingDispatch, _onDispatchCompleted);

    public void AwaitResults() => ContinueWhenCompleted(ref PendingResults, _onDispatchCompleted);

    protected override void Execute() => _owner.RunLoop(this);

    private void OnDispatchCompleted() => _owner.OnAsyncDispatchCompleted(this);
}

