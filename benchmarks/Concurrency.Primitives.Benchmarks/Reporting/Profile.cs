using System.Collections.Generic;

namespace Concurrency.Primitives.Benchmarks.Reporting;

/// <summary>
/// Which configurations a run measures: <c>quick</c> one representative configuration per class (the README's
/// comparison, minutes on two cores), anything else every configuration. Read by the classes' <c>[ParamsSource]</c>
/// members, which BenchmarkDotNet evaluates in the process that plans the run.
/// </summary>
public static class Profile
{
    public static bool Quick { get; set; }

    public static IEnumerable<T> Pick<T>(IEnumerable<T> quick, IEnumerable<T> full) => Quick ? quick : full;

    /// <summary>
    /// <c>CONCURRENCY_PRIMITIVES_BATCHER_CELL=SIZExDISPATCHES</c> (say <c>64x1</c>) narrows the Batcher class to that one
    /// configuration, for a profile of one cell under BenchmarkDotNet's own engine; otherwise <paramref name="values"/>.
    /// </summary>
    public static IEnumerable<int> BatcherCell(int part, IEnumerable<int> values) =>
        System.Environment.GetEnvironmentVariable("CONCURRENCY_PRIMITIVES_BATCHER_CELL")?.Split('x') is [var size, var dispatches]
            && int.TryParse(part == 0 ? size : dispatches, out var value)
            ? new[] { value }
            : values;
}
