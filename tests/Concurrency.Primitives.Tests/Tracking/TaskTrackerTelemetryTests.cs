using System;
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Linq;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Tracking;

public sealed class TaskTrackerTelemetryTests
{
    [Fact]
    public async Task Instruments_CountStartedFaultedAndOutstanding_ForThisTracker()
    {
        var name = "metrics-" + Guid.NewGuid().ToString("N");
        var totals = new ConcurrentDictionary<string, long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == ConcurrencyPrimitivesTelemetry.MeterName && instrument.Name.StartsWith("concurrency.primitives.tracker.", StringComparison.Ordinal))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "tracker.name" && (string?)tag.Value == name)
                {
                    totals.AddOrUpdate(instrument.Name, value, (_, sum) => sum + value);
                }
            }
        });
        listener.Start();

        var tracker = new TaskTracker(new TaskTrackerOptions { Name = name });
        await tracker.Go(_ => Task.CompletedTask);
        await tracker.Go(_ => throw new InvalidOperationException());
        tracker.Add(2);
        var lease = tracker.Register();
        totals["concurrency.primitives.tracker.outstanding"].Should().BeGreaterThanOrEqualTo(3);
        tracker.Done();
        tracker.Done();
        lease.Dispose();
        await tracker.Invoking(t => t.CloseAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>();

        totals["concurrency.primitives.tracker.started"].Should().Be(2);
        totals["concurrency.primitives.tracker.faulted"].Should().Be(1);
        totals["concurrency.primitives.tracker.outstanding"].Should().Be(0);
    }
}
