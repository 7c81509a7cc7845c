using System;

namespace Concurrency.Primitives.Benchmarks.Reporting;

/// <summary>What a benchmark case stands for in the comparison.</summary>
public enum CaseKind
{
    /// <summary>One of this library's primitives.</summary>
    Ours,

    /// <summary>The code a user writes by hand in its place (the class's baseline, or beside it).</summary>
    HandRolled,

    /// <summary>A well-known library or BCL type a user would pick instead.</summary>
    Alternative,

    /// <summary>The least work that does the job with none of the guarantees: the physical limit on the machine.</summary>
    Floor,
}

/// <summary>Says what a benchmark method stands for in the comparison's summary and charts.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class CaseAttribute : Attribute
{
    public CaseAttribute(CaseKind kind) => Kind = kind;

    public CaseKind Kind { get; }
}
