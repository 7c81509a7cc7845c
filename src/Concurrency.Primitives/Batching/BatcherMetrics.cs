using System.Diagnostics.Metrics;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary><see cref="Batcher{TItem, TResult}"/>'s instruments on the <c>Concurrency.Primitives</c> meter, tagged <c>batcher.name</c>.</summary>
internal static class BatcherMetrics
{
    public static readonly UpDownCounter<long> Queued = Telemetry.Meter.CreateUpDownCounter<long>(
        "concurrency.primitives.batcher.queued", "{item}", "Items accepted by a Batcher and not yet handed to a dispatch.");

    public static readonly Histogram<int> BatchSize = Telemetry.Meter.CreateHistogram<int>(
        "concurrency.primitives.batcher.batch.size", "{item}", "Items per dispatched batch.");

    public static readonly Histogram<double> DispatchDuration = Telemetry.Meter.CreateHistogram<double>(
        "concurrency.primitives.batcher.dispatch.duration", "s", "How long each dispatch ran.");

    public static readonly Counter<long> DispatchFaults = Telemetry.Meter.CreateCounter<long>(
        "concurrency.primitives.batcher.dispatch.faults", "{dispatch}", "Dispatches that threw or faulted, or returned a result list of the wrong length.");

    public static readonly Counter<long> Timeouts = Telemetry.Meter.CreateCounter<long>(
        "concurrency.primitives.batcher.timeouts", "{item}", "Callers released because their bound or their dispatch's timeout passed.");

    public static readonly Counter<long> Orphans = Telemetry.Meter.CreateCounter<long>(
        "concurrency.primitives.batcher.orphans_prevented", "{item}", "Items the post-dispatch sweep had to complete: forgotten by the handler or left by a fault. Each one is a waiter another batcher would have orphaned.");

    public static readonly Counter<long> StuckDispatches = Telemetry.Meter.CreateCounter<long>(
        "concurrency.primitives.batcher.dispatch.stuck", "{dispatch}", "Dispatches that ran past their timeout and kept their slot.");
}
