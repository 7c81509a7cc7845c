using System;
using System.Collections.Generic;

namespace Concurrency.Primitives;

/// <summary>
/// The batch handed to a <see cref="Batcher{TItem, TResult}"/> dispatch: its items, in submit order, and a way to
/// answer each one. Valid only during the dispatch call; afterwards every member throws.
/// </summary>
/// <typeparam name="TItem">The item type.</typeparam>
/// <typeparam name="TResult">The result type.</typeparam>
/// <remarks>
/// <para>
/// Answer each item once with <see cref="TrySetResult"/> or <see cref="TrySetException"/>; the first answer wins and later
/// ones return <see langword="false"/> (so does answering an item whose caller already gave up). Items left unanswered
/// when the dispatch returns fail with <see cref="BatchItemNotCompletedException"/>; if the dispatch throws, they fail with
/// <see cref="BatchDispatchException"/>. Answering from several threads at once is safe.
/// </para>
/// <para>
/// With coalescing (<see cref="BatcherOptions{TItem}.CoalescingComparer"/>), each index is a <i>slot</i> that every caller
/// of an equal item in the batch shares: it holds the first such caller's item, and answering it answers all of them (the
/// first answer of the slot wins). <see cref="Count"/> is then the number of slots, which can be smaller than the number
/// of callers in the batch.
/// </para>
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1815:Override equals and operator equals on value types", Justification = "A view valid during one dispatch call: comparing two of them means nothing, so it offers no equality.")]
public readonly struct Batch<TItem, TResult>
{
    private readonly BatchCore<TItem, TResult>? _core;
    private readonly int _version;

    internal Batch(BatchCore<TItem, TResult> core, int version)
    {
        _core = core;
        _version = version;
    }

    /// <summary>How many items the batch holds.</summary>
    /// <exception cref="InvalidOperationException">The dispatch has returned, or this is a default value.</exception>
    public int Count => Core.Count;

    /// <summary>
    /// The items, in submit order, as a read-only list (no copy, no allocation): pass it straight to a bulk call
    /// (<c>db.GetManyAsync(batch.Items, ct)</c>). Valid only during the dispatch call, as the batch is; copy it to keep it.
    /// </summary>
    /// <exception cref="InvalidOperationException">The dispatch has returned, or this is a default value.</exception>
    public IReadOnlyList<TItem> Items => Core;

    private BatchCore<TItem, TResult> Core =>
        _core is not { } core
            ? throw new InvalidOperationException("This Batch is a default value; use the one the batcher passes to the dispatch.")
            : Volatile(core) == _version && core.State == BatchCore<TItem, TResult>.Phase.Dispatching
                ? core
                : throw new InvalidOperationException("This batch is valid only during its dispatch call, which has returned. Answer every item before the dispatch returns.");

    /// <summary>The item at <paramref name="index"/>, in submit order.</summary>
    /// <param name="index">The position, from 0 to <see cref="Count"/> - 1.</param>
    /// <returns>The item.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is out of range.</exception>
    /// <exception cref="InvalidOperationException">The dispatch has returned, or this is a default value.</exception>
    public TItem this[int index] => CoreAt(index).Values[index];

    /// <summary>Answers the item at <paramref name="index"/> with its result.</summary>
    /// <param name="index">The position, from 0 to <see cref="Count"/> - 1.</param>
    /// <param name="result">The result.</param>
    /// <returns><see langword="true"/> if this answered the item; <see langword="false"/> if it was already answered, cancelled or timed out.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is out of range.</exception>
    /// <exception cref="InvalidOperationException">The dispatch has returned, or this is a default value.</exception>
    public bool TrySetResult(int index, TResult result)
    {
        var core = CoreAt(index);
        return core.Coalescing ? core.TrySetSlotResult(index, result) : core.Items[index].TrySetResult(core.Uses[index], result, releaseBatcher: true);
    }

    /// <summary>Fails the item at <paramref name="index"/> with <paramref name="exception"/>.</summary>
    /// <param name="index">The position, from 0 to <see cref="Count"/> - 1.</param>
    /// <param name="exception">The exception the item's caller receives.</param>
    /// <returns><see langword="true"/> if this answered the item; <see langword="false"/> if it was already answered, cancelled or timed out.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="exception"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is out of range.</exception>
    /// <exception cref="InvalidOperationException">The dispatch has returned, or this is a default value.</exception>
    public bool TrySetException(int index, Exception exception)
    {
        Internal.Guard.NotNull(exception);
        var core = CoreAt(index);
        return core.Coalescing ? core.TrySetSlotException(index, exception) : core.Items[index].TrySetException(core.Uses[index], exception, releaseBatcher: true);
    }

    private static int Volatile(BatchCore<TItem, TResult> core) => System.Threading.Volatile.Read(ref core.Version);

    /// <summary>
    /// The batch, while its dispatch runs and <paramref name="index"/> is in range. An answer goes to the item's use
    /// recorded when the batch was cut: a call that passed this check just as the dispatch returned can then find the
    /// item released, read and serving another caller, and it must not answer that caller.
    /// </summary>
    private BatchCore<TItem, TResult> CoreAt(int index)
    {
        var core = Core;
        if ((uint)index >= (uint)core.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"The batch holds {core.Count} item(s).");
        }

        return core;
    }
}
