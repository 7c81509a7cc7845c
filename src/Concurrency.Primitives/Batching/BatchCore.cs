using System;
using System.Collections;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary>
/// A pooled batch: its items in submit order, its dispatch token source, and the continuation that observes an asynchronous dispatch. It is the
/// thread-pool work item that runs the dispatch, and the read-only item list handed to the result-list dispatch form.
/// Everything here is guarded by the owning batcher's lock, except what the one running dispatch touches.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001:Types that own disposable fields should be disposable", Justification = "Pooled for the batcher's lifetime; its token source has no timer, so nothing is left to release.")]
internal sealed class BatchCore<TItem, TResult> : PoolWorkItem, IReadOnlyList<TItem>
{
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

    public Phase State;

    /// <summary>Changes whenever the batch leaves a phase, so that late timer callbacks and stale <see cref="Batch{TItem, TResult}"/> values are ignored or refused.</summary>
    public int Version;

    public CancellationTokenSource? Cancellation;

    public ValueTask PendingDispatch;

    public ValueTask<IReadOnlyList<TResult>> PendingResults;

    public long DispatchStarted;

    /// <summary>When the running dispatch's token is cancelled and its callers released (a timestamp; enforced by the sweep).</summary>
    public long DispatchDeadline;

    public bool TimedOut;

    /// <summary>Its place in the batcher's list of running dispatches.</summary>
    public ListLinks<BatchCore<TItem, TResult>> Links;

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

    public void Start() => Dispatch(flowContext: false);

    public void AwaitDispatch() => ContinueWhenCompleted(ref PendingDispatch, _onDispatchCompleted);

    public void AwaitResults() => ContinueWhenCompleted(ref PendingResults, _onDispatchCompleted);

    protected override void Execute() => _owner.RunDispatch(this);

    private void OnDispatchCompleted() => _owner.OnAsyncDispatchCompleted(this);
}

/// <summary>Finds a <see cref="BatchCore{TItem, TResult}"/>'s running-list links.</summary>
/// <typeparam name="TItem">The item type.</typeparam>
/// <typeparam name="TResult">The result type.</typeparam>
internal readonly struct BatchCoreLinks<TItem, TResult> : ILinksOf<BatchCore<TItem, TResult>>
{
    public ref ListLinks<BatchCore<TItem, TResult>> Of(BatchCore<TItem, TResult> node) => ref node.Links;
}
