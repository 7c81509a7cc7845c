using System;
using System.Collections.Generic;
using System.Threading;

namespace Concurrency.Primitives;

// The stall watchdog (HandlerStallThreshold). The loop stamps each consumer call (PumpLoop.CallHandle, CallType, then
// CallStartedAt; NoCall once it returns): a clock read and three writes, no timer per event. One timer per pump looks at
// the stamp: armed when the loop is scheduled, it re-arms itself for when the call in progress reaches the threshold (or
// a threshold later, between calls), and is left unarmed when it finds the loop idle. A call is reported once: the
// watchdog remembers the start stamp of the call it last reported.
public sealed partial class PeerEventPump<TPeer, TMessage>
{
    /// <summary>The stamp of no call in progress (a real timestamp of any clock differs).</summary>
    private const long NoCall = long.MinValue;

    private readonly TimeSpan? _stallThreshold;
    private readonly ITimer? _watchdog;

    // Guarded by _lock, as is every Change of the timer, so that arming, re-arming and disposing never cross.
    private bool _watchdogArmed;
    private bool _watchdogStopped;
    private long _stallReported = NoCall;

    /// <summary>
    /// Raised once for each consumer call that runs past <see cref="PeerEventPumpOptions.HandlerStallThreshold"/>, with the
    /// peer's handle, the event type and how long the call had run (also logged, event 4009, and counted,
    /// <c>concurrency.primitives.pump.handler_stalls</c>). Never raised without that option.
    /// </summary>
    /// <remarks>
    /// Raised on the watchdog's timer thread, outside every lock of the pump, while the stalled call still runs; the
    /// report neither interrupts the call nor cancels its token. Listeners run one at a time, each on its own: one that
    /// throws is logged (event 4010) and counted, and the others still run. A listener may disconnect the stalled peer
    /// (<see cref="PeerHandlerStalledEventArgs{TPeer, TMessage}.Handle"/>); it must not wait for the stalled call.
    /// </remarks>
    public event EventHandler<PeerHandlerStalledEventArgs<TPeer, TMessage>>? HandlerStalled;

    /// <summary>Stamps the start of a consumer call for the watchdog (a no-op without one).</summary>
    private static void StampCall(PumpLoop loop, PeerHandle<TPeer, TMessage> handle, PeerEventType type)
    {
        if (loop.Watched)
        {
            // CallStartedAt last: a watchdog that reads it twice around the other two knows they belong to that call.
            Volatile.Write(ref loop.CallHandle, handle);
            Volatile.Write(ref loop.CallType, (int)type);
            Volatile.Write(ref loop.CallStartedAt, loop.Clock.Now());
        }
    }

    private void ArmWatchdogLocked(TimeSpan due)
    {
        _watchdogArmed = true;
        _watchdog!.Change(due, Timeout.InfiniteTimeSpan);
    }

    /// <summary>The pump has completed: the watchdog stops for good. Called under the lock.</summary>
    private void StopWatchdogLocked()
    {
        if (_watchdog is not null && !_watchdogStopped)
        {
            _watchdogStopped = true;
            _watchdogArmed = false;
            _watchdog.Dispose();
        }
    }

    private void OnWatchdog()
    {
        PeerHandlerStalledEventArgs<TPeer, TMessage>? stall;
        lock (_lock)
        {
            stall = LookForStallLocked();
        }

        if (stall is not null)
        {
            ReportStall(stall);
        }
    }

    /// <summary>Looks at the call in progress; re-arms the timer (or leaves it unarmed); returns a stall to report, once per call. Called under the lock.</summary>
    private PeerHandlerStalledEventArgs<TPeer, TMessage>? LookForStallLocked()
    {
        if (_watchdogStopped)
        {
            return null;
        }

        var threshold = _stallThreshold!.Value;
        var loop = _loop;

        // The time first: a call seen in progress after this read was in progress at this time, so a later call (which
        // starts after it returns) has a later stamp, and the stamp of a reported call names that call alone.
        var now = loop.Clock.Now();
        var started = Volatile.Read(ref loop.CallStartedAt);
        var handle = Volatile.Read(ref loop.CallHandle);
        var type = Volatile.Read(ref loop.CallType);
        if (started == NoCall || Volatile.Read(ref loop.CallStartedAt) != started)
        {
            // Between calls (or one just ended): look again a threshold later while the loop is active.
            if (_scheduled)
            {
                ArmWatchdogLocked(threshold);
            }
            else
            {
                _watchdogArmed = false; // idle: the next schedule arms it
            }

            return null;
        }

        var elapsed = loop.Clock.Between(started, now);
        if (started == _stallReported || elapsed < threshold)
        {
            // Reported already (look again for the next call), or not yet due: look when it will be.
            ArmWatchdogLocked(started == _stallReported ? threshold : threshold - elapsed);
            return null;
        }

        _stallReported = started;
        ArmWatchdogLocked(threshold);
        return new PeerHandlerStalledEventArgs<TPeer, TMessage>(handle!, (PeerEventType)type, elapsed, threshold);
    }

    /// <summary>Logs, counts and raises a stall. Outside every lock: the logger and the listeners are user code.</summary>
    private void ReportStall(PeerHandlerStalledEventArgs<TPeer, TMessage> stall)
    {
        if (_metrics.HandlerStalls.Enabled)
        {
            _metrics.HandlerStalls.Add(1, _metricTag, new KeyValuePair<string, object?>("event.kind", EventKindTag(stall.EventType)));
        }

        PeerEventPumpLog.HandlerStalled(_logger, _name, stall.EventType, stall.Peer.ToString() ?? string.Empty, stall.Elapsed, stall.Threshold);
        if (HandlerStalled is { } listeners)
        {
            foreach (var listener in listeners.GetInvocationList())
            {
                try
                {
                    ((EventHandler<PeerHandlerStalledEventArgs<TPeer, TMessage>>)listener)(this, stall);
                }
                catch (Exception exception)
                {
                    if (_metrics.CallbackFaults.Enabled)
                    {
                        _metrics.CallbackFaults.Add(1, _metricTag, new KeyValuePair<string, object?>("callback", "handler_stalled"));
                    }

                    PeerEventPumpLog.StallListenerFailed(_logger, _name, exception);
                }
            }
        }
    }

    private static string EventKindTag(PeerEventType type) => type switch
    {
        PeerEventType.Added => "added",
        PeerEventType.Removed => "removed",
        _ => "message",
    };
}
