using System.Diagnostics.Metrics;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary><see cref="LifecycleGate"/>'s instruments on the <c>Concurrency.Primitives</c> meter, tagged <c>gate.name</c>.</summary>
internal static class LifecycleGateMetrics
{
    public static readonly Counter<long> Transitions = Telemetry.Meter.CreateCounter<long>(
        "concurrency.primitives.gate.transitions", "{transition}", "State transitions of a LifecycleGate, tagged with the new state.");

    public static readonly Counter<long> Faults = Telemetry.Meter.CreateCounter<long>(
        "concurrency.primitives.gate.faults", "{fault}", "Start, run and stop failures of a LifecycleGate, tagged with the phase.");

    public static readonly Histogram<double> StopDuration = Telemetry.Meter.CreateHistogram<double>(
        "concurrency.primitives.gate.stop.duration", "s", "How long a LifecycleGate's stop took, from request to Stopped.");
}
