using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Hosting;

/// <summary>
/// The dispatch of a batcher registered with <c>AddBatcher&lt;TItem, TResult, THandler&gt;()</c>, resolved from the
/// container (by default from a fresh scope per dispatch, so it may depend on scoped services such as a <c>DbContext</c>).
/// </summary>
/// <typeparam name="TItem">The submitted item (a key to load, a row to write).</typeparam>
/// <typeparam name="TResult">Each item's result.</typeparam>
public interface IBatchHandler<TItem, TResult>
{
    /// <summary>
    /// Handles one batch: set each item's result or error (<see cref="Batch{TItem, TResult}.TrySetResult"/>,
    /// <see cref="Batch{TItem, TResult}.TrySetException"/>). Items left unanswered, or every item if this throws, are
    /// failed for their callers: no caller waits forever.
    /// </summary>
    /// <param name="batch">The batch; valid only until the returned task completes.</param>
    /// <param name="cancellationToken">Cancelled at the batcher's dispatch timeout, or when every caller has given up.</param>
    /// <returns>A task that completes when the batch is handled.</returns>
    Task DispatchAsync(Batch<TItem, TResult> batch, CancellationToken cancellationToken);
}

/// <summary>Where a registered batcher resolves its <see cref="IBatchHandler{TItem, TResult}"/>.</summary>
public enum BatchHandlerScope
{
    /// <summary>From a new DI scope for each dispatch, disposed once the dispatch has returned. The default.</summary>
    PerDispatch = 0,

    /// <summary>Once, from the root provider, when the batcher is created: for a handler with no scoped dependencies.</summary>
    Root = 1,
}
