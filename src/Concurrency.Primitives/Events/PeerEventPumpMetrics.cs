using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary><see cref="PeerEventPump{TPeer, TMessage}"/>'s instruments on the <c>Concurrency.Primitives</c> meter, tagged <c>pump.name</c>.</summary>
internal sealed class PeerEventPumpMetrics
{
    private static readonly ConditionalWeakTable<Meter, PeerEventPumpMetrics> PerMeter = new();

    private PeerEventPumpMetrics(Meter meter)
    {
        LivePeers = meter.CreateUpDownCounter<long>(
            "concurrency.primitives.pump.live_peers", "{peer}", "Peers whose Added the consumer has seen and whose Removed it has not.");
        Queued = meter.CreateUpDownCounter<long>(
            "concurrency.primitives.pump.queued", "{message}", "Messages waiting for the pump's loop.");
        Events = meter.CreateCounter<long>(
            "concurrency.primitives.pump.events", "{event}", "Events delivered to the consumer.");
        ConsumerFaults = meter.CreateCounter<long>(
            "concurrency.primitives.pump.consumer_faults", "{fault}", "Exceptions thrown by the consumer.");
        Dropped = meter.CreateCounter<long>(
            "concurrency.primitives.pump.dropped", "{message}", "Messages dropped: by the full mode (the queue or the peer's quota was full), or discarded by a fault.");
        HandlerStalls = meter.CreateCounter<long>(
            "concurrency.primitives.pump.handler_stalls", "{call}", "Consumer calls that ran past the stall threshold, counted once each.");
        CallbackFaults = meter.CreateCounter<long>(
            "concurrency.primitives.pump.callback_faults", "{fault}", "Exceptions thrown by the message-dropped callback and by HandlerStalled listeners.");
    }

    /// <summary>The instruments on the library's static meter: used when no <see cref="IMeterFactory"/> is given.</summary>
    public static PeerEventPumpMetrics Default { get; } = new(Telemetry.Meter);

    public UpDownCounter<long> LivePeers { get; }

    public UpDownCounter<long> Queued { get; }

    public Counter<long> Events { get; }

    public Counter<long> ConsumerFaults { get; }

    /// <summary>Tagged <c>drop.reason</c>: <c>capacity</c>, <c>peer_capacity</c> or <c>fault</c>.</summary>
    public Counter<long> Dropped { get; }

    public Counter<long> HandlerStalls { get; }

    /// <summary>Tagged <c>callback</c>: <c>message_dropped</c> or <c>handler_stalled</c>.</summary>
    public Counter<long> CallbackFaults { get; }

    /// <summary>The instruments on <paramref name="meterFactory"/>'s meter (one set per meter), or <see cref="Default"/>.</summary>
    public static PeerEventPumpMetrics For(IMeterFactory? meterFactory) =>
        meterFactory is null ? Default : PerMeter.GetValue(Telemetry.MeterFrom(meterFactory), static meter => new PeerEventPumpMetrics(meter));
}
