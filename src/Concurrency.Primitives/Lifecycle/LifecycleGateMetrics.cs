using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary><see cref="LifecycleGate"/>'s and <see cref="LifecycleGroup"/>'s instruments on the <c>Concurrency.Primitives</c> meter, tagged <c>gate.name</c>.</summary>
internal sealed class LifecycleGateMetrics
{
    private static readonly ConditionalWeakTable<Meter, LifecycleGateMetrics> PerMeter = new();

    private LifecycleGateMetrics(Meter meter)
    {
        Transitions = meter.CreateCounter<long>(
            "concurrency.primitives.gate.transitions", "{transition}", "State transitions of a LifecycleGate, tagged with the new state.");
        Faults = meter.CreateCounter<long>(
            "concurrency.primitives.gate.faults", "{fault}", "Start, run and stop failures of a LifecycleGate, tagged with the phase.");
        StopDuration = meter.CreateHistogram<double>(
            "concurrency.primitives.gate.stop.duration", "s", "How long a LifecycleGate's stop took, from request to Stopped.");
        GroupGateFaults = meter.CreateCounter<long>(
            "concurrency.primitives.group.gate_faults", "{fault}", "Gates of a LifecycleGroup that faulted while running, tagged group.name and gate.name.");
    }

    /// <summary>The instruments on the library's static meter: used when no <see cref="IMeterFactory"/> is given.</summary>
    public static LifecycleGateMetrics Default { get; } = new(Telemetry.Meter);

    public Counter<long> Transitions { get; }

    public Counter<long> Faults { get; }

    public Histogram<double> StopDuration { get; }

    public Counter<long> GroupGateFaults { get; }

    /// <summary>The instruments on <paramref name="meterFactory"/>'s meter (one set per meter), or <see cref="Default"/>.</summary>
    public static LifecycleGateMetrics For(IMeterFactory? meterFactory) =>
        meterFactory is null ? Default : PerMeter.GetValue(Telemetry.MeterFrom(meterFactory), static meter => new LifecycleGateMetrics(meter));
}
