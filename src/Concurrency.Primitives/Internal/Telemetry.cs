using System.Diagnostics.Metrics;
using System.Reflection;

namespace Concurrency.Primitives.Internal;

/// <summary>The library's one <see cref="Meter"/>, shared by every primitive's instruments.</summary>
internal static class Telemetry
{
    public const string MeterName = ConcurrencyPrimitivesTelemetry.MeterName;

    public static readonly Meter Meter = new(
        MeterName,
        typeof(Telemetry).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion);
}
