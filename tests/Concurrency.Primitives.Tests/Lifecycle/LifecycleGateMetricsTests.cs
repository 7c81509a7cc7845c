using System;
using System.Linq;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace Concurrency.Primitives.Tests.Lifecycle;

/// <summary>
/// The gate's fault counter says in which phase each fault happened (start, run, stop), and a completed stop records its
/// duration; a failed stop records none.
/// </summary>
public sealed class LifecycleGateMetricsTests
{
    [Fact]
    public async Task EachFault_IsCountedUnderItsPhase_AndOnlyACompletedStopRecordsADuration()
    {
        var name = "metrics-" + Guid.NewGuid().ToString("N");
        using var faults = new MetricCollector<long>(meterScope: null, ConcurrencyPrimitivesTelemetry.MeterName, "concurrency.primitives.gate.faults");
        using var durations = new MetricCollector<double>(meterScope: null, ConcurrencyPrimitivesTelemetry.MeterName, "concurrency.primitives.gate.stop.duration");
        var options = new LifecycleGateOptions { Name = name, AllowRestart = true };
        var failStart = true;
        var failStop = true;
        var runFaulted = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: (_, _) => failStart ? throw new InvalidOperationException("start") : Task.CompletedTask,
            run: _ => Task.FromException(new InvalidOperationException("run")),
            stop: _ => failStop ? throw new InvalidOperationException("stop") : Task.CompletedTask,
            options: options);
        gate.StateChanged += (_, change) =>
        {
            if (change.Current == LifecycleState.RunFaulted)
            {
                runFaulted.TrySetResult();
            }
        };

        await gate.Awaiting(g => g.StartAsync()).Should().ThrowAsync<InvalidOperationException>().OrHang();
        failStart = false;
        await gate.StartAsync().OrHang();
        await runFaulted.Task.OrHang();
        await gate.Awaiting(g => g.StopAsync()).Should().ThrowAsync<InvalidOperationException>().OrHang(); // the stop step fails
        Phases().Should().BeEquivalentTo(new[] { "start", "run", "stop" });
        Durations().Should().BeEmpty("a stop that failed did not complete");

        failStop = false;
        await gate.Awaiting(g => g.StopAsync()).Should().ThrowAsync<InvalidOperationException>().OrHang(); // completes, then reports the run's fault
        Durations().Should().ContainSingle().Which.Should().BeGreaterThanOrEqualTo(0);

        string[] Phases() => faults.GetMeasurementSnapshot()
            .Where(m => (string?)m.Tags["gate.name"] == name)
            .Select(m => (string)m.Tags["gate.phase"]!)
            .ToArray();

        double[] Durations() => durations.GetMeasurementSnapshot()
            .Where(m => (string?)m.Tags["gate.name"] == name)
            .Select(m => m.Value)
            .ToArray();
    }
}
