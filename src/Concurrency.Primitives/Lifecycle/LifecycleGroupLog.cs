using System;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives;

/// <summary>Source-generated log messages of <see cref="LifecycleGroup"/> (event ids 2012-2016).</summary>
internal static partial class LifecycleGroupLog
{
    [LoggerMessage(EventId = 2012, Level = LogLevel.Error, Message = "Group {Group}: gate '{Gate}' faulted while running; policy {Policy}")]
    public static partial void GateFaulted(ILogger logger, string group, string gate, LifecycleGroupFaultPolicy policy, Exception exception);

    [LoggerMessage(EventId = 2013, Level = LogLevel.Error, Message = "Group {Group}: gate '{Gate}' failed to start; stopping the gates that started, in reverse dependency order")]
    public static partial void GateStartFailed(ILogger logger, string group, string gate, Exception exception);

    [LoggerMessage(EventId = 2014, Level = LogLevel.Error, Message = "Group {Group}: gate '{Gate}' did not stop; the gates it depends on are left running")]
    public static partial void GateStopFailed(ILogger logger, string group, string gate, Exception exception);

    [LoggerMessage(EventId = 2015, Level = LogLevel.Warning, Message = "Group {Group}: gate '{Gate}' stopped and reported its run's earlier fault")]
    public static partial void GateStoppedWithFault(ILogger logger, string group, string gate, Exception exception);

    [LoggerMessage(EventId = 2016, Level = LogLevel.Error, Message = "Group {Group}: a handler threw; the group is unaffected")]
    public static partial void HandlerFailed(ILogger logger, string group, Exception exception);
}
