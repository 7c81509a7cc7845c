using System;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives;

/// <summary>Source-generated log messages of <see cref="TaskTracker"/> (event ids 1001-1013).</summary>
internal static partial class TaskTrackerLog
{
    [LoggerMessage(EventId = 1001, Level = LogLevel.Debug, Message = "Tracker {Tracker}: registered {Kind} '{Operation}' #{Id}; {Count} outstanding right after it")]
    public static partial void Registered(ILogger logger, string tracker, TrackedOperationKind kind, string operation, long id, int count);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Debug, Message = "Tracker {Tracker}: released '{Operation}' #{Id}; {Count} outstanding right after it")]
    public static partial void Released(ILogger logger, string tracker, string operation, long id, int count);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Error, Message = "Tracker {Tracker}: '{Operation}' #{Id} failed; CloseAsync will throw this failure")]
    public static partial void WorkFailed(ILogger logger, string tracker, string operation, long id, Exception exception);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Debug, Message = "Tracker {Tracker}: '{Operation}' #{Id} was cancelled")]
    public static partial void WorkCancelled(ILogger logger, string tracker, string operation, long id);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Information, Message = "Tracker {Tracker}: closing with {Count} outstanding")]
    public static partial void CloseStarted(ILogger logger, string tracker, int count);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Information, Message = "Tracker {Tracker}: completed with {Failures} recorded failure(s)")]
    public static partial void Completed(ILogger logger, string tracker, int failures);

    [LoggerMessage(EventId = 1007, Level = LogLevel.Warning, Message = "Tracker {Tracker}: close timed out after {Timeout} with {Count} outstanding")]
    public static partial void CloseTimedOut(ILogger logger, string tracker, TimeSpan timeout, int count, Exception exception);

    [LoggerMessage(EventId = 1008, Level = LogLevel.Error, Message = "Tracker {Tracker}: disposing it, the close timed out after {Timeout} with {Count} outstanding (listed in the exception); nothing was thrown to the disposer, and the work keeps running")]
    public static partial void DisposeTimedOut(ILogger logger, string tracker, TimeSpan timeout, int count, Exception exception);

    [LoggerMessage(EventId = 1009, Level = LogLevel.Error, Message = "Tracker {Tracker}: disposed with {Failures} recorded failure(s) of tracked work (each logged as it happened); nothing was thrown to the disposer, Completion holds them")]
    public static partial void DisposedWithFailures(ILogger logger, string tracker, int failures, Exception? exception);

    [LoggerMessage(EventId = 1010, Level = LogLevel.Debug, Message = "Tracker {Tracker}: '{Operation}' #{Id} failed; the task RunAsync returned carries the failure")]
    public static partial void RunFailed(ILogger logger, string tracker, string operation, long id, Exception exception);

    [LoggerMessage(EventId = 1011, Level = LogLevel.Error, Message = "Tracker {Tracker}: a WorkFailed handler threw; the tracker and the other handlers are unaffected")]
    public static partial void HandlerFailed(ILogger logger, string tracker, Exception exception);

    [LoggerMessage(EventId = 1012, Level = LogLevel.Warning, Message = "Tracker {Tracker}: '{Operation}' #{Id} is still outstanding after {Age} (threshold {Threshold}); parent {Parent}; registered at {RegistrationSite}")]
    public static partial void LongRunning(ILogger logger, string tracker, string operation, long id, TimeSpan age, TimeSpan threshold, string parent, string registrationSite);

    [LoggerMessage(EventId = 1013, Level = LogLevel.Error, Message = "Tracker {Tracker}: a LongRunning handler threw; the tracker and the other handlers are unaffected")]
    public static partial void LongRunningHandlerFailed(ILogger logger, string tracker, Exception exception);
}
