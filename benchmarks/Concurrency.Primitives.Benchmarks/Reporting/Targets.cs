using System.Collections.Generic;

namespace Concurrency.Primitives.Benchmarks.Reporting;

/// <summary>
/// The targets every primitive is held to, ratios within one run (the same table is in <c>benchmarks/RESULTS.md</c>):
/// faster than the hand-rolled code and than the best alternative, within 1.5× of the floor where the class has one,
/// and, where the primitive promises it, nothing allocated per operation.
/// </summary>
public static class Targets
{
    /// <summary>Ours ÷ hand-rolled must be below this.</summary>
    public const double HandRolled = 1.0;

    /// <summary>Ours ÷ the best alternative must be below this.</summary>
    public const double BestAlternative = 1.0;

    /// <summary>Ours ÷ the floor must be at most this.</summary>
    public const double Floor = 1.5;

    /// <summary>The classes whose primitive promises 0 B per operation.</summary>
    public static readonly IReadOnlySet<string> ZeroAllocation = new HashSet<string>
    {
        nameof(TrackerRegisterDoneBenchmarks),
        nameof(GateStartRunningBenchmarks),
        nameof(BatcherBenchmarks),
        nameof(BatcherCallersBenchmarks),
        nameof(PumpBenchmarks),
    };
}
