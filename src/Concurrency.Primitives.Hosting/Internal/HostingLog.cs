using System;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Hosting.Internal;

/// <summary>Source-generated log messages of the hosting package (event ids 5001-5011, category <c>Concurrency.Primitives.Hosting</c>).</summary>
internal static partial class HostingLog
{
    public const string Category = "Concurrency.Primitives.Hosting";

    [LoggerMessage(EventId = 5001, Level = LogLevel.Critical, Message = "Lifecycle service '{Service}' faulted: {RootCause}. Stopping the host with exit code {ExitCode}")]
    public static partial void RunFaultStopsHost(ILogger logger, string service, string rootCause, int exitCode, Exception fault);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Error, Message = "Lifecycle service '{Service}' faulted: {RootCause}. The host keeps running (RunFaultBehavior is Ignore); the service stays faulted until the host stops")]
    public static partial void RunFaultIgnored(ILogger logger, string service, string rootCause, Exception fault);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Error, Message = "Lifecycle service '{Service}' did not stop within the host's shutdown timeout; its teardown is still waiting for '{Step}'. Nothing it owns was released under its run")]
    public static partial void StopOutlivedHost(ILogger logger, string service, string step);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Error, Message = "Lifecycle service '{Service}' did not stop within the host's shutdown timeout; its teardown is still waiting for '{Step}'. With AbandonRunOnTimeout, what it owns is released once the run's bound passes, even if the run still runs")]
    public static partial void StopOutlivedHostAbandoning(ILogger logger, string service, string step);

    [LoggerMessage(EventId = 5004, Level = LogLevel.Error, Message = "Lifecycle service '{Service}' failed to stop")]
    public static partial void StopFailed(ILogger logger, string service, Exception failure);

    [LoggerMessage(EventId = 5005, Level = LogLevel.Error, Message = "Task tracker '{Tracker}' did not drain within {Bound} at the host's stop; still running: {Outstanding}")]
    public static partial void TrackerOutlivedHost(ILogger logger, string tracker, string bound, string outstanding, Exception? timeout);

    [LoggerMessage(EventId = 5006, Level = LogLevel.Error, Message = "Task tracker '{Tracker}' did not drain cleanly at the host's stop: tracked work failed")]
    public static partial void TrackerCloseFailed(ILogger logger, string tracker, Exception failure);

    [LoggerMessage(EventId = 5007, Level = LogLevel.Error, Message = "{Kind} '{Name}' did not close within the host's shutdown timeout")]
    public static partial void CloseOutlivedHost(ILogger logger, string kind, string name);

    [LoggerMessage(EventId = 5008, Level = LogLevel.Error, Message = "{Kind} '{Name}' failed to close at the host's stop")]
    public static partial void CloseFailed(ILogger logger, string kind, string name, Exception failure);

    [LoggerMessage(EventId = 5009, Level = LogLevel.Debug, Message = "{Kind} '{Name}' closed at the host's stop")]
    public static partial void Closed(ILogger logger, string kind, string name);

    [LoggerMessage(EventId = 5010, Level = LogLevel.Error, Message = "Lifecycle service '{Service}' failed to start")]
    public static partial void StartFailed(ILogger logger, string service, Exception failure);

    [LoggerMessage(EventId = 5011, Level = LogLevel.Warning, Message = "Lifecycle service '{Service}' finished its stop after the host's shutdown timeout (seen when the container disposed it): everything it owns was released")]
    public static partial void StopFinishedAfterHost(ILogger logger, string service);
}
