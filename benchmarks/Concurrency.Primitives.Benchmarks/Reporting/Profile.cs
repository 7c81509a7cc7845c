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
}
