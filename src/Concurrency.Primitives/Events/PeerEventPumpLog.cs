using System;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives;

/// <summary>Source-generated log messages of <see cref="PeerEventPump{TPeer, TMessage}"/> (event ids 4001-4010).</summary>
internal static partial class PeerEventPumpLog
{
    [LoggerMessage(EventId = 4001, Level = LogLevel.Error, Message = "Pump {Pump}: the consumer threw on {Kind} for peer {Peer}; {Policy}")]
    public static partial void HandlerFailed(ILogger logger, string pump, string kind, string peer, PeerEventPumpFaultPolicy policy, Exception exception);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Pump {Pump}: the message queue is full; a message of peer {Peer} was dropped ({Mode})")]
    public static partial void MessageDropped(ILogger logger, string pump, string peer, PeerEventPumpFullMode mode);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Information, Message = "Pump {Pump}: shutting down with {Peers} connected peer(s)")]
    public static partial void ShutdownStarted(ILogger logger, string pump, int peers);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Warning, Message = "Pump {Pump}: shutdown timed out after {Timeout}; the consumer's token was cancelled")]
    public static partial void ShutdownTimedOut(ILogger logger, string pump, TimeSpan timeout);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Error, Message = "Pump {Pump}: faulted; discarding {Messages} queued message(s), removing {Peers} live peer(s), then completing with the consumer's exception")]
    public static partial void Faulted(ILogger logger, string pump, int messages, int peers, Exception exception);

    [LoggerMessage(EventId = 4006, Level = LogLevel.Error, Message = "Pump {Pump}: disposing it, the shutdown did not finish in time and the consumer's token was cancelled; nothing was thrown to the disposer")]
    public static partial void DisposeTimedOut(ILogger logger, string pump, Exception exception);

    [LoggerMessage(EventId = 4007, Level = LogLevel.Warning, Message = "Pump {Pump}: peer {Peer} has its quota of {Quota} message(s) waiting; one of its messages was dropped ({Mode})")]
    public static partial void PeerMessageDropped(ILogger logger, string pump, string peer, int quota, PeerEventPumpFullMode mode);

    [LoggerMessage(EventId = 4008, Level = LogLevel.Error, Message = "Pump {Pump}: the message-dropped callback threw for a message of peer {Peer}; the pump and the poster are unaffected")]
    public static partial void DropCallbackFailed(ILogger logger, string pump, string peer, Exception exception);

    [LoggerMessage(EventId = 4009, Level = LogLevel.Warning, Message = "Pump {Pump}: the consumer has been in {EventType} for peer {Peer} for {Elapsed}, past the stall threshold of {Threshold}")]
    public static partial void HandlerStalled(ILogger logger, string pump, PeerEventType eventType, string peer, TimeSpan elapsed, TimeSpan threshold);

    [LoggerMessage(EventId = 4010, Level = LogLevel.Error, Message = "Pump {Pump}: a HandlerStalled listener threw; the pump and the other listeners are unaffected")]
    public static partial void StallListenerFailed(ILogger logger, string pump, Exception exception);
}
