using System;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>
/// Sizes of the stress tests. CI runs the base counts; CONCURRENCY_PRIMITIVES_SOAK=1 runs 100 times more.
/// The time limit only bounds a hang: reaching it before the count is reached fails the test.
/// </summary>
public static class StressSettings
{
    public static bool Soak => Environment.GetEnvironmentVariable("CONCURRENCY_PRIMITIVES_SOAK") == "1";

    public static int Scale => Soak ? 100 : 1;

    public static TimeSpan TimeLimit => Soak ? TimeSpan.FromHours(4) : TimeSpan.FromMinutes(4);

    public static int Workers => Math.Max(4, Environment.ProcessorCount * 2);

    public static int Seed => Environment.GetEnvironmentVariable("CONCURRENCY_PRIMITIVES_SEED") is { } text && int.TryParse(text, out var seed)
        ? seed
        : Environment.TickCount;
}
