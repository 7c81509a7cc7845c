using System;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>
/// Sizes of the stress tests. CI runs the base counts; CONCURRENCY_PRIMITIVES_SOAK=1 runs 100 times more, and
/// CONCURRENCY_PRIMITIVES_SCALE=N (a positive whole number) runs N times more. The time limit only bounds a hang: reaching
/// it before the count is reached fails the test.
/// </summary>
public static class StressSettings
{
    public static bool Soak => Environment.GetEnvironmentVariable("CONCURRENCY_PRIMITIVES_SOAK") == "1";

    public static int Scale => Environment.GetEnvironmentVariable("CONCURRENCY_PRIMITIVES_SCALE") is { } text && int.TryParse(text, out var scale) && scale > 0
        ? scale
        : Soak ? 100 : 1;

    public static TimeSpan TimeLimit => Scale > 1 ? TimeSpan.FromHours(4) : TimeSpan.FromMinutes(4);

    public static int Workers => Math.Max(4, Environment.ProcessorCount * 2);

    public static int Seed => Environment.GetEnvironmentVariable("CONCURRENCY_PRIMITIVES_SEED") is { } text && int.TryParse(text, out var seed)
        ? seed
        : Environment.TickCount;

    /// <summary>
    /// Runs rounds one after another, each with a seed drawn from <paramref name="seed"/>, until <paramref name="progress"/>
    /// reaches <paramref name="target"/>. A round that outlives <paramref name="hangBound"/>, or the whole run outliving
    /// <see cref="TimeLimit"/>, fails the test: the bounds catch a hang, they never pace the rounds.
    /// </summary>
    /// <returns>How many rounds ran.</returns>
    public static async Task<int> RunRoundsAsync(int seed, long target, Func<long> progress, Func<int, Task> round, TimeSpan hangBound)
    {
        var random = new Random(seed);
        using var limit = new CancellationTokenSource(TimeLimit);
        var rounds = 0;
        while (progress() < target)
        {
            limit.Token.ThrowIfCancellationRequested();
            await round(random.Next()).WaitAsync(hangBound, limit.Token);
            rounds++;
        }

        return rounds;
    }
}
