using System;
using System.Collections.Generic;
using System.Diagnostics.Metrics;
using System.Linq;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>One measurement of a pump instrument, with its tags other than <c>pump.name</c>.</summary>
public sealed record PumpMeasurement(string Instrument, long Value, IReadOnlyDictionary<string, object?> Tags);

/// <summary>Records the measurements of the pump named <c>name</c> on the library's meter (any other pump's are ignored).</summary>
public sealed class PumpMetricRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly List<PumpMeasurement> _seen = new();

    public PumpMetricRecorder(string name)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == ConcurrencyPrimitivesTelemetry.MeterName && instrument.Name.StartsWith("concurrency.primitives.pump.", StringComparison.Ordinal))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            var pairs = tags.ToArray();
            if (!pairs.Any(t => t.Key == "pump.name" && Equals(t.Value, name)))
            {
                return;
            }

            lock (_seen)
            {
                _seen.Add(new PumpMeasurement(instrument.Name, value, pairs.Where(t => t.Key != "pump.name").ToDictionary(t => t.Key, t => t.Value)));
            }
        });
        _listener.Start();
    }

    /// <summary>The sum of <paramref name="instrument"/>'s measurements (short name, after <c>concurrency.primitives.pump.</c>), optionally of those with a tag.</summary>
    public long Sum(string instrument, string? tag = null, object? value = null)
    {
        lock (_seen)
        {
            return _seen
                .Where(m => m.Instrument == "concurrency.primitives.pump." + instrument && (tag is null || (m.Tags.TryGetValue(tag, out var v) && Equals(v, value))))
                .Sum(m => m.Value);
        }
    }

    /// <summary>The values of <paramref name="instrument"/>'s measurements (short name), in the order they were recorded.</summary>
    public IReadOnlyList<long> Values(string instrument)
    {
        lock (_seen)
        {
            return _seen.Where(m => m.Instrument == "concurrency.primitives.pump." + instrument).Select(m => m.Value).ToList();
        }
    }

    public void Dispose() => _listener.Dispose();
}
