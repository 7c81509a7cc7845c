using System;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives;

/// <summary>Source-generated log messages of <see cref="Batcher{TItem, TResult}"/> (event ids 3001-3010).</summary>
internal static partial class BatcherLog
{
    [LoggerMessage(EventId = 3001, Level = LogLevel.Error, Message = "Batcher {Batcher}: a dispatch of {Count} item(s) failed; {Swept} unanswered item(s) failed with it")]
    public static partial void DispatchFailed(ILogger logger, string batcher, int count, int swept, Exception exception);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "Batcher {Batcher}: the handler returned without answering {Swept} of {Count} item(s); they failed with BatchItemNotCompletedException")]
    public static partial void ItemsNotCompleted(ILogger logger, string batcher, int count, int swept);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Error, Message = "Batcher {Batcher}: the handler returned {Results} result(s) for {Count} item(s); every item failed")]
    public static partial void ResultCountMismatch(ILogger logger, string batcher, int count, int results);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Warning, Message = "Batcher {Batcher}: a dispatch of {Count} item(s) ran past {Timeout}; its token was cancelled, its callers released, and it still holds its slot")]
    public static partial void DispatchTimedOut(ILogger logger, string batcher, int count, TimeSpan timeout);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Information, Message = "Batcher {Batcher}: a dispatch that had timed out returned after {Elapsed}; its slot is free again")]
    public static partial void StuckDispatchReturned(ILogger logger, string batcher, TimeSpan elapsed);

    [LoggerMessage(EventId = 3006, Level = LogLevel.Information, Message = "Batcher {Batcher}: shutting down ({Mode}) with {Queued} item(s) queued and {InFlight} dispatch(es) running")]
    public static partial void ShutdownStarted(ILogger logger, string batcher, BatcherShutdownMode mode, int queued, int inFlight);

    [LoggerMessage(EventId = 3007, Level = LogLevel.Warning, Message = "Batcher {Batcher}: shutdown timed out after {Timeout} with {InFlight} dispatch(es) still running")]
    public static partial void ShutdownTimedOut(ILogger logger, string batcher, TimeSpan timeout, int inFlight);

    [LoggerMessage(EventId = 3008, Level = LogLevel.Error, Message = "Batcher {Batcher}: disposing it, the shutdown did not finish in time; nothing was thrown to the disposer. Completion completes when the running dispatches return")]
    public static partial void DisposeTimedOut(ILogger logger, string batcher, Exception exception);

    [LoggerMessage(EventId = 3009, Level = LogLevel.Debug, Message = "Batcher {Batcher}: every caller of a batch gave up before its dispatch finished; the dispatch's token was cancelled")]
    public static partial void DispatchAbandoned(ILogger logger, string batcher);

    [LoggerMessage(EventId = 3010, Level = LogLevel.Debug, Message = "Batcher {Batcher}: a dispatch of {Count} item(s) whose callers had all given up ended with its cancellation")]
    public static partial void AbandonedDispatchCancelled(ILogger logger, string batcher, int count);
}
