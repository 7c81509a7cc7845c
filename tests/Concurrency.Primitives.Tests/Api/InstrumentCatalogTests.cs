using System;
using System.Collections.Generic;
using System.Diagnostics.Metrics;
using System.Linq;
using System.Reflection;

namespace Concurrency.Primitives.Tests.Api;

/// <summary>
/// The library's instruments are a contract (dashboards and alerts name them): each primitive's set is exactly this
/// catalogue, with these units and a description, created once per meter, on the static meter when no factory is given.
/// </summary>
public sealed class InstrumentCatalogTests
{
    private static readonly Dictionary<string, string> Catalogue = new()
    {
        ["concurrency.primitives.tracker.outstanding"] = "{operation}",
        ["concurrency.primitives.tracker.started"] = "{operation}",
        ["concurrency.primitives.tracker.faulted"] = "{operation}",
        ["concurrency.primitives.tracker.long_running"] = "{operation}",
        ["concurrency.primitives.gate.transitions"] = "{transition}",
        ["concurrency.primitives.gate.faults"] = "{fault}",
        ["concurrency.primitives.gate.stop.duration"] = "s",
        ["concurrency.primitives.group.gate_faults"] = "{fault}",
        ["concurrency.primitives.batcher.queued"] = "{item}",
        ["concurrency.primitives.batcher.batch.size"] = "{item}",
        ["concurrency.primitives.batcher.dispatch.duration"] = "s",
        ["concurrency.primitives.batcher.dispatch.faults"] = "{dispatch}",
        ["concurrency.primitives.batcher.timeouts"] = "{item}",
        ["concurrency.primitives.batcher.orphans_prevented"] = "{item}",
        ["concurrency.primitives.batcher.coalesced"] = "{item}",
        ["concurrency.primitives.batcher.dispatch.abandoned"] = "{dispatch}",
        ["concurrency.primitives.batcher.dispatch.stuck"] = "{dispatch}",
        ["concurrency.primitives.pump.live_peers"] = "{peer}",
        ["concurrency.primitives.pump.queued"] = "{message}",
        ["concurrency.primitives.pump.events"] = "{event}",
        ["concurrency.primitives.pump.consumer_faults"] = "{fault}",
        ["concurrency.primitives.pump.dropped"] = "{message}",
        ["concurrency.primitives.pump.handler_stalls"] = "{call}",
        ["concurrency.primitives.pump.callback_faults"] = "{fault}",
    };

    private static readonly Type[] MetricsTypes =
    {
        typeof(TaskTrackerMetrics), typeof(LifecycleGateMetrics), typeof(BatcherMetrics), typeof(PeerEventPumpMetrics),
    };

    [Fact]
    public void EveryInstrument_HasItsCataloguedNameAndUnit_AndADescription()
    {
        using var factory = new OneMeterFactory();

        var instruments = MetricsTypes.SelectMany(type => InstrumentsOf(For(type, factory))).ToList();

        instruments.Select(i => i.Name).Should().BeEquivalentTo(Catalogue.Keys);
        instruments.Should().OnlyContain(i => i.Unit == Catalogue[i.Name], "each instrument keeps its unit");
        instruments.Should().OnlyContain(i => !string.IsNullOrWhiteSpace(i.Description) && i.Description!.EndsWith('.'), "each says what it counts, in a sentence");
        instruments.Should().OnlyContain(i => ReferenceEquals(i.Meter, factory.Meter));
        factory.Meter!.Name.Should().Be(ConcurrencyPrimitivesTelemetry.MeterName);
    }

    [Fact]
    public void EachPrimitivesInstruments_AreCreatedOncePerMeter_AndOnTheStaticMeterWithoutAFactory()
    {
        using var one = new OneMeterFactory();
        using var two = new OneMeterFactory();

        foreach (var type in MetricsTypes)
        {
            For(type, one).Should().BeSameAs(For(type, one), "{0} makes one set per meter", type.Name);
            For(type, two).Should().NotBeSameAs(For(type, one));
            var shared = For(type, null);
            shared.Should().BeSameAs(For(type, null));
            InstrumentsOf(shared).Should().OnlyContain(i => i.Meter.Name == ConcurrencyPrimitivesTelemetry.MeterName && !ReferenceEquals(i.Meter, one.Meter));
        }
    }

    private static object For(Type metrics, IMeterFactory? factory) =>
        metrics.GetMethod("For", BindingFlags.Public | BindingFlags.Static)!.Invoke(null, new object?[] { factory })!;

    private static IEnumerable<Instrument> InstrumentsOf(object metrics) => metrics.GetType()
        .GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => typeof(Instrument).IsAssignableFrom(p.PropertyType))
        .Select(p => (Instrument)p.GetValue(metrics)!);

    private sealed class OneMeterFactory : IMeterFactory
    {
        public Meter? Meter { get; private set; }

        public Meter Create(MeterOptions options) => Meter ??= new Meter(options.Name, options.Version, options.Tags, this);

        public void Dispose() => Meter?.Dispose();
    }
}
