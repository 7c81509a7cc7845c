using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary>
/// <see cref="TaskTracker"/>'s instruments on the <c>Concurrency.Primitives</c> meter, tagged <c>tracker.name</c>.
/// Each is written only when a listener has enabled it, so an unobserved tracker pays one field read.
/// </summary>
internal sealed class TaskTrackerMetrics
{
    private static readonly ConditionalWeakTable<Meter, TaskTrackerMetrics> PerMeter = new();

    private TaskTrackerMetrics(Meter meter)
    {
        Outstanding = meter.CreateUpDownCounter<long>(
            "concurrency.primitives.tracker.outstanding", "{operation}", "Registrations held in a TaskTracker and not yet released.");
        Started = meter.CreateCounter<long>(
            "concurrency.primitives.tracker.started", "{operation}", "Work started by TaskTracker.Go, RunAsync or TryGo.");
        Faulted = meter.CreateCounter<long>(
            "concurrency.primitives.tracker.faulted", "{operation}", "Failures of work tracked by a TaskTracker.");
        LongRunning = meter.CreateCounter<long>(
            "concurrency.primitives.tracker.long_running", "{operation}", "Operations reported by a TaskTracker's watchdog: outstanding past LongRunningThreshold.");
    }

    /// <summary>The instruments on the library's static meter: used when no <see cref="IMeterFactory"/> is given.</summary>
    public static TaskTrackerMetrics Default { get; } = new(Telemetry.Meter);

    public UpDownCounter<long> Outstanding { get; }

    public Counter<long> Started { get; }

    public Counter<long> Faulted { get; }

    public Counter<long> LongRunning { get; }

    /// <summary>The instruments on <paramref name="meterFactory"/>'s meter (one set per meter), or <see cref="Default"/>.</summary>
    public static TaskTrackerMetrics For(IMeterFactory? meterFactory) =>
        meterFactory is null ? Default : PerMeter.GetValue(Telemetry.MeterFrom(meterFactory), static meter => new TaskTrackerMetrics(meter));
}
