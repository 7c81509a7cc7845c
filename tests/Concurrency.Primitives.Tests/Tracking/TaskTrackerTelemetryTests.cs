using System;
using System.Linq;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace Concurrency.Primitives.Tests.Tracking;

/// <summary>The tracker's instruments, observed with the maintained <c>MetricCollector</c> on the library's static meter.</summary>
public sealed class TaskTrackerTelemetryTests
{
    [Fact]
    public async Task Instruments_CountStartedFaultedAndOutstanding_ForThisTracker()
    {
        var name = "metrics-" + Guid.NewGuid().ToString("N");
        using var started = Collect("concurrency.primitives.tracker.started");
        using var faulted = Collect("concurrency.primitives.tracker.faulted");
        using var outstanding = Collect("concurrency.primitives.tracker.outstanding");

        var tracker = new TaskTracker(new TaskTrackerOptions { Name = name });
        await tracker.Go(_ => Task.CompletedTask);
        await tracker.Go(_ => throw new InvalidOperationException());
        tracker.Add(2);
        var lease = tracker.Register();
        SumFor(outstanding, name).Should().BeGreaterThanOrEqualTo(3);
        tracker.Done();
        tracker.Done();
        lease.Dispose();
        await tracker.Invoking(t => t.CloseAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>();

        SumFor(started, name).Should().Be(2);
        SumFor(faulted, name).Should().Be(1);
        SumFor(outstanding, name).Should().Be(0);
    }

    // The static meter is shared by every tracker of the test run: count this tracker's measurements only.
    private static MetricCollector<long> Collect(string instrument) => new(meterScope: null, ConcurrencyPrimitivesTelemetry.MeterName, instrument);

    private static long SumFor(MetricCollector<long> collector, string tracker) =>
        collector.GetMeasurementSnapshot().Where(m => m.Tags.TryGetValue("tracker.name", out var value) && (string?)value == tracker).Sum(m => m.Value);
}
