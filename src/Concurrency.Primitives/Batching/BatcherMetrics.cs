using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary><see cref="Batcher{TItem, TResult}"/>'s instruments on the <c>Concurrency.Primitives</c> meter, tagged <c>batcher.name</c>.</summary>
internal sealed class BatcherMetrics
{
    private static readonly ConditionalWeakTable<Meter, BatcherMetrics> PerMeter = new();

    private BatcherMetrics(Meter meter)
    {
        Queued = meter.CreateUpDownCounter<long>(
            "concurrency.primitives.batcher.queued", "{item}", "Items accepted by a Batcher and not yet handed to a dispatch.");
        BatchSize = meter.CreateHistogram<int>(
            "concurrency.primitives.batcher.batch.size", "{item}", "Items per dispatched batch.");
        DispatchDuration = meter.CreateHistogram<double>(
            "concurrency.primitives.batcher.dispatch.duration", "s", "How long each dispatch ran.");
        DispatchFaults = meter.CreateCounter<long>(
            "concurrency.primitives.batcher.dispatch.faults", "{dispatch}", "Dispatches that threw or faulted, or returned a result list of the wrong length.");
        Timeouts = meter.CreateCounter<long>(
            "concurrency.primitives.batcher.timeouts", "{item}", "Callers released because their bound or their dispatch's timeout passed.");
        Orphans = meter.CreateCounter<long>(
            "concurrency.primitives.batcher.orphans_prevented", "{item}", "Items the post-dispatch sweep had to complete: forgotten by the handler or left by a fault. Each one is a waiter another batcher would have orphaned.");
        Coalesced = meter.CreateCounter<long>(
            "concurrency.primitives.batcher.coalesced", "{item}", "Callers that shared a slot with an earlier caller of an equal item in the same batch (coalescing).");
        AbandonedDispatches = meter.CreateCounter<long>(
            "concurrency.primitives.batcher.dispatch.abandoned", "{dispatch}", "Dispatches whose token was cancelled because every caller of the batch had given up.");
        StuckDispatches = meter.CreateCounter<long>(
            "concurrency.primitives.batcher.dispatch.stuck", "{dispatch}", "Dispatches that ran past their timeout and kept their slot.");
    }

    /// <summary>The instruments on the library's static meter: used when no <see cref="IMeterFactory"/> is given.</summary>
    public static BatcherMetrics Default { get; } = new(Telemetry.Meter);

    public UpDownCounter<long> Queued { get; }

    public Histogram<int> BatchSize { get; }

    public Histogram<double> DispatchDuration { get; }

    public Counter<long> DispatchFaults { get; }

    public Counter<long> Timeouts { get; }

    public Counter<long> Orphans { get; }

    public Counter<long> StuckDispatches { get; }

    public Counter<long> Coalesced { get; }

    public Counter<long> AbandonedDispatches { get; }

    /// <summary>The instruments on <paramref name="meterFactory"/>'s meter (one set per meter), or <see cref="Default"/>.</summary>
    public static BatcherMetrics For(IMeterFactory? meterFactory) =>
        meterFactory is null ? Default : PerMeter.GetValue(Telemetry.MeterFrom(meterFactory), static meter => new BatcherMetrics(meter));
}
