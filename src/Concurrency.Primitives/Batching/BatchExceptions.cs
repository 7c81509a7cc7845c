using System;

namespace Concurrency.Primitives;

/// <summary>
/// The base of the failures a <see cref="Batcher{TItem, TResult}"/> gives a caller on behalf of the batch machinery (not
/// an exception the dispatch set for that item): the batch's dispatch failed (<see cref="BatchDispatchException"/>),
/// forgot the item (<see cref="BatchItemNotCompletedException"/>), or the caller's bound passed (<see cref="BatchTimeoutException"/>).
/// </summary>
public class BatchException : Exception
{
    /// <summary>Creates an exception with a default message.</summary>
    public BatchException()
        : this("The batched call failed.")
    {
    }

    /// <summary>Creates an exception with the given message.</summary>
    /// <param name="message">The message.</param>
    public BatchException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with the given message and inner exception.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public BatchException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// The dispatch of the caller's batch threw (or faulted) before answering this item. <see cref="Exception.InnerException"/>
/// is the dispatch's exception, the same for every item of the batch, so a caller can tell a batch fault from its own error.
/// </summary>
public sealed class BatchDispatchException : BatchException
{
    /// <summary>Creates an exception with a default message.</summary>
    public BatchDispatchException()
        : this("The batch dispatch failed.")
    {
    }

    /// <summary>Creates an exception with the given message.</summary>
    /// <param name="message">The message.</param>
    public BatchDispatchException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with the given message and inner exception.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The dispatch's exception.</param>
    public BatchDispatchException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception a batcher gives an item whose dispatch failed (a test of a caller may build one).</summary>
    /// <param name="fault">The dispatch's exception.</param>
    /// <param name="index">The item's position in its batch.</param>
    /// <param name="batchSize">How many items the batch held.</param>
    /// <exception cref="ArgumentNullException"><paramref name="fault"/> is <see langword="null"/>.</exception>
    public BatchDispatchException(Exception fault, int index, int batchSize)
        : base($"The dispatch of a batch of {batchSize} item(s) failed before answering item {index}: {Internal.Guard.NotNull(fault).Message}", fault)
    {
        Index = index;
        BatchSize = batchSize;
    }

    /// <summary>The item's position in its batch.</summary>
    public int Index { get; }

    /// <summary>How many items the batch held.</summary>
    public int BatchSize { get; }
}

/// <summary>
/// The dispatch returned without answering this item (a forgotten index), or returned a result list whose length did not
/// match the batch. The batcher completed the item so that its caller is never left waiting.
/// </summary>
public sealed class BatchItemNotCompletedException : BatchException
{
    /// <summary>Creates an exception with a default message.</summary>
    public BatchItemNotCompletedException()
        : this("The batch handler returned without completing this item.")
    {
    }

    /// <summary>Creates an exception with the given message.</summary>
    /// <param name="message">The message.</param>
    public BatchItemNotCompletedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with the given message and inner exception.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public BatchItemNotCompletedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception a batcher gives an item its dispatch did not answer (a test of a caller may build one).</summary>
    /// <param name="index">The item's position in its batch.</param>
    /// <param name="batchSize">How many items the batch held.</param>
    /// <param name="resultCount">For the result-list form, how many results the handler returned; otherwise <see langword="null"/>.</param>
    public BatchItemNotCompletedException(int index, int batchSize, int? resultCount)
        : base(resultCount is { } count
            ? $"The batch handler returned {count} result(s) for a batch of {batchSize} item(s); results map to items by position, so none of them can be trusted (item {index})."
            : $"The batch handler returned without completing item {index} of a batch of {batchSize}; every item must be answered with TrySetResult or TrySetException.")
    {
        Index = index;
        BatchSize = batchSize;
        ResultCount = resultCount;
    }

    /// <summary>The item's position in its batch.</summary>
    public int Index { get; }

    /// <summary>How many items the batch held.</summary>
    public int BatchSize { get; }

    /// <summary>For the result-list form: how many results the handler returned; otherwise <see langword="null"/>.</summary>
    public int? ResultCount { get; }
}

/// <summary>
/// The caller's bound (<see cref="BatcherOptions.Timeout"/>) passed, or the dispatch of its batch ran past
/// <see cref="BatcherOptions.DispatchTimeout"/>. The caller is released; if <see cref="WasDispatched"/>, its item may still be
/// processed by the dispatch that is running.
/// </summary>
/// <remarks>
/// A <see cref="BatchException"/>, not a <see cref="TimeoutException"/>: catch it by this type, or by <see cref="BatchException"/>
/// with the batcher's other failures.
/// </remarks>
public sealed class BatchTimeoutException : BatchException
{
    /// <summary>Creates an exception with a default message.</summary>
    public BatchTimeoutException()
        : this("The batched call timed out.")
    {
    }

    /// <summary>Creates an exception with the given message.</summary>
    /// <param name="message">The message.</param>
    public BatchTimeoutException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with the given message and inner exception.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public BatchTimeoutException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception a batcher gives a caller whose bound passed (a test of a caller may build one).</summary>
    /// <param name="timeout">The bound that passed: the caller's <see cref="BatcherOptions.Timeout"/>, or the dispatch's timeout.</param>
    /// <param name="wasDispatched">Whether the item had been handed to a dispatch.</param>
    /// <param name="dispatchTimedOut">Whether it was the dispatch's timeout that passed.</param>
    public BatchTimeoutException(TimeSpan timeout, bool wasDispatched, bool dispatchTimedOut)
        : base(dispatchTimedOut
            ? $"The dispatch of this item's batch ran past its timeout of {timeout}; its token was cancelled and its callers released. The item may still be processed."
            : wasDispatched
                ? $"The call did not complete within {timeout}; its batch is being dispatched and may still process the item."
                : $"The call did not complete within {timeout}; the item was never dispatched and will not be.")
    {
        Timeout = timeout;
        WasDispatched = wasDispatched;
        DispatchTimedOut = dispatchTimedOut;
    }

    /// <summary>The bound that passed.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>
    /// Whether the item had been handed to a dispatch (which may still process it). <see langword="false"/> only when no
    /// dispatch has received the item and none will; <see langword="true"/> may also be said of an item whose batch was
    /// being cut just as the bound passed, and which was then left out of it.
    /// </summary>
    public bool WasDispatched { get; }

    /// <summary>Whether the dispatch's timeout (<see cref="BatcherOptions.DispatchTimeout"/>) passed, rather than the caller's own bound.</summary>
    public bool DispatchTimedOut { get; }
}
