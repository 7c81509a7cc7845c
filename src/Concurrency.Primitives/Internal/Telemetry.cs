using System.Diagnostics.Metrics;
using System.Reflection;

namespace Concurrency.Primitives.Internal;

/// <summary>
/// The library's meters: one static <see cref="Meter"/> shared by every primitive that was given no
/// <see cref="IMeterFactory"/>, and, for those that were, the factory's meter of the same name (a host's factory keeps
/// one per name, so two hosts in one process keep separate meters).
/// </summary>
internal static class Telemetry
{
    public const string MeterName = ConcurrencyPrimitivesTelemetry.MeterName;

    private static readonly string? Version =
        typeof(Telemetry).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;

    public static readonly Meter Meter = new(MeterName, Version);

    public static Meter MeterFrom(IMeterFactory meterFactory) => meterFactory.Create(new MeterOptions(MeterName) { Version = Version });
}
