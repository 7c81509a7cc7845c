using System;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives;

/// <summary>Source-generated log messages of <see cref="LifecycleGate"/> and <see cref="OrderedTeardown"/> (event ids 2001-2011).</summary>
internal static partial class LifecycleGateLog
{
    [LoggerMessage(EventId = 2001, Level = LogLevel.Debug, Message = "Gate {Gate}: {Previous} -> {Current}")]
    public static partial void Transition(ILogger logger, string gate, LifecycleState previous, LifecycleState current);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Error, Message = "Gate {Gate}: start failed; what it acquired was released and the stop delegate was not called")]
    public static partial void StartFailed(ILogger logger, string gate, Exception exception);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Error, Message = "Gate {Gate}: the run faulted on its own; the gate is RunFaulted and StopAsync will throw this exception after the teardown")]
    public static partial void RunFaulted(ILogger logger, string gate, Exception exception);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Error, Message = "Gate {Gate}: stop failed; the gate is StopFailed and StopAsync resumes the teardown where it stopped")]
    public static partial void StopFailed(ILogger logger, string gate, Exception exception);

    [LoggerMessage(EventId = 2005, Level = LogLevel.Warning, Message = "Teardown step '{Step}' did not finish within {Timeout}")]
    public static partial void StepTimedOut(ILogger logger, string step, TimeSpan timeout);

    [LoggerMessage(EventId = 2006, Level = LogLevel.Error, Message = "Teardown step '{Step}' failed; it stays first in line for the next attempt")]
    public static partial void StepFailed(ILogger logger, string step, Exception exception);

    [LoggerMessage(EventId = 2007, Level = LogLevel.Warning, Message = "The run did not return within {Timeout} after cancellation; abandoned by option, the teardown goes on")]
    public static partial void RunAbandoned(ILogger logger, TimeSpan timeout);

    [LoggerMessage(EventId = 2008, Level = LogLevel.Error, Message = "Gate {Gate}: a StateChanged handler threw; the gate is unaffected")]
    public static partial void HandlerFailed(ILogger logger, string gate, Exception exception);

    [LoggerMessage(EventId = 2009, Level = LogLevel.Error, Message = "Gate {Gate}: releasing what a failed start acquired failed")]
    public static partial void StartCleanupFailed(ILogger logger, string gate, Exception exception);

    [LoggerMessage(EventId = 2010, Level = LogLevel.Error, Message = "Gate {Gate}: disposing it, its stop failed; nothing was thrown to the disposer. The gate keeps the failure (Fault, Completion) and StopAsync resumes the teardown")]
    public static partial void DisposeFailed(ILogger logger, string gate, Exception exception);

    [LoggerMessage(EventId = 2011, Level = LogLevel.Error, Message = "Teardown {Teardown}: disposing it, the teardown failed; nothing was thrown to the disposer. ExecuteAsync resumes it where it stopped")]
    public static partial void TeardownDisposeFailed(ILogger logger, string teardown, Exception exception);
}
