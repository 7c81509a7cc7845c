using System.Diagnostics.Metrics;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary><see cref="PeerEventPump{TPeer, TMessage}"/>'s instruments on the <c>Concurrency.Primitives</c> meter, tagged <c>pump.name</c>.</summary>
internal static class PeerEventPumpMetrics
{
    public static readonly UpDownCounter<long> LivePeers = Telemetry.Meter.CreateUpDownCounter<long>(
        "concurrency.primitives.pump.live_peers", "{peer}", "Peers whose Added the consumer has seen and whose Removed it has not.");

    public static readonly UpDownCounter<long> Queued = Telemetry.Meter.CreateUpDownCounter<long>(
        "concurrency.primitives.pump.queued", "{message}", "Messages waiting for the pump's loop.");

    public static readonly Counter<long> Events = Telemetry.Meter.CreateCounter<long>(
        "concurrency.primitives.pump.events", "{event}", "Events delivered to the consumer.");

    public static readonly Counter<long> ConsumerFaults = Telemetry.Meter.CreateCounter<long>(
        "concurrency.primitives.pump.consumer_faults", "{fault}", "Exceptions thrown by the consumer.");

    public static readonly Counter<long> Dropped = Telemetry.Meter.CreateCounter<long>(
        "concurrency.primitives.pump.dropped", "{message}", "Messages dropped because the queue was full.");
}
