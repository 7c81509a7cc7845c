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
            "concurrency.primitives.pump.dropped", "{message}", "Messages dropped because the queue was full.");
    }

    /// <summary>The instruments on the library's static meter: used when no <see cref="IMeterFactory"/> is given.</summary>
    public static PeerEventPumpMetrics Default { get; } = new(Telemetry.Meter);

    public UpDownCounter<long> LivePeers { get; }

    public UpDownCounter<long> Queued { get; }

    public Counter<long> Events { get; }

    public Counter<long> ConsumerFaults { get; }

    public Counter<long> Dropped { get; }

    /// <summary>The instruments on <paramref name="meterFactory"/>'s meter (one set per meter), or <see cref="Default"/>.</summary>
    public static PeerEventPumpMetrics For(IMeterFactory? meterFactory) =>
        meterFactory is null ? Default : PerMeter.GetValue(Telemetry.MeterFrom(meterFactory), static meter => new PeerEventPumpMetrics(meter));
}
