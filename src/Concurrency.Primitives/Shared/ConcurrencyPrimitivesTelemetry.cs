namespace Concurrency.Primitives;

/// <summary>Names under which the library reports its telemetry.</summary>
/// <remarks>
/// Every primitive records its metrics on one <see cref="System.Diagnostics.Metrics.Meter"/> named
/// <see cref="MeterName"/>; each instrument is tagged with the primitive's name (<c>tracker.name</c>, <c>gate.name</c>,
/// <c>batcher.name</c>, <c>pump.name</c>). Subscribe with <c>MeterListener</c>, or with OpenTelemetry's
/// <c>AddMeter(ConcurrencyPrimitivesTelemetry.MeterName)</c>. An instrument nobody listens to costs one field read.
/// </remarks>
public static class ConcurrencyPrimitivesTelemetry
{
    /// <summary>The name of the library's meter: <c>"Concurrency.Primitives"</c>.</summary>
    public const string MeterName = "Concurrency.Primitives";
}
