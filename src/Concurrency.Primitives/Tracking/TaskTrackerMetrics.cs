using System.Diagnostics.Metrics;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary>
/// <see cref="TaskTracker"/>'s instruments on the <c>Concurrency.Primitives</c> meter, tagged <c>tracker.name</c>.
/// Each is written only when a listener has enabled it, so an unobserved tracker pays one field read.
/// </summary>
internal static class TaskTrackerMetrics
{
    public static readonly UpDownCounter<long> Outstanding = Telemetry.Meter.CreateUpDownCounter<long>(
        "concurrency.primitives.tracker.outstanding", "{operation}", "Registrations held in a TaskTracker and not yet released.");

    public static readonly Counter<long> Started = Telemetry.Meter.CreateCounter<long>(
        "concurrency.primitives.tracker.started", "{operation}", "Work started by TaskTracker.Go, RunAsync or TryGo.");

    public static readonly Counter<long> Faulted = Telemetry.Meter.CreateCounter<long>(
        "concurrency.primitives.tracker.faulted", "{operation}", "Failures of work tracked by a TaskTracker.");
}
