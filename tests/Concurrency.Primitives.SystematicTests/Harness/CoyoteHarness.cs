using System;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.Coyote;
using Microsoft.Coyote.Rewriting;
using Microsoft.Coyote.SystematicTesting;
using Xunit.Abstractions;

namespace Concurrency.Primitives.SystematicTests.Harness;

/// <summary>
/// Runs one Coyote test from xunit: checks that the assemblies were rewritten (an unrewritten run
/// reports false deadlocks), explores <paramref name="iterations"/> schedules, prints the counts
/// and, on a bug, the bug report and the reproducible trace.
/// </summary>
public static class CoyoteHarness
{
    /// <summary>Set CONCURRENCY_PRIMITIVES_SOAK=1 to explore 100 times more schedules, from a random seed.</summary>
    public static bool Soak => Environment.GetEnvironmentVariable("CONCURRENCY_PRIMITIVES_SOAK") == "1";

    /// <summary>CONCURRENCY_PRIMITIVES_SEED=n replays the exploration a report printed (with or without the soak switch).</summary>
    private static uint? ReplaySeed =>
        uint.TryParse(Environment.GetEnvironmentVariable("CONCURRENCY_PRIMITIVES_SEED"), out var seed) ? seed : null;

    /// <summary>
    /// CONCURRENCY_PRIMITIVES_COYOTE_ITERATIONS=n explores at most n schedules per test: the mutation pass
    /// (tests/mutation/coyote.py) runs every scenario once per mutant and takes a shorter look. It never raises a count.
    /// </summary>
    private static uint? IterationCap =>
        uint.TryParse(Environment.GetEnvironmentVariable("CONCURRENCY_PRIMITIVES_COYOTE_ITERATIONS"), out var cap) && cap > 0 ? cap : null;

    /// <summary>
    /// CONCURRENCY_PRIMITIVES_COYOTE_VOLATILES=1 interleaves at every volatile access in every scenario: the mutation pass
    /// (tests/mutation/coyote.py --volatiles) takes that finer look at the race-only mutants; CI keeps each scenario's own setting.
    /// </summary>
    private static bool VolatilesEverywhere => Environment.GetEnvironmentVariable("CONCURRENCY_PRIMITIVES_COYOTE_VOLATILES") == "1";

    /// <summary>
    /// CONCURRENCY_PRIMITIVES_COYOTE_PRIORITY_CHANGES=n explores every scenario with the prioritization strategy (at most n
    /// priority changes per schedule) where it asks for none: the mutation pass's other look (tests/mutation/coyote.py --priorities n).
    /// </summary>
    private static uint? PriorityChangesEverywhere =>
        uint.TryParse(Environment.GetEnvironmentVariable("CONCURRENCY_PRIMITIVES_COYOTE_PRIORITY_CHANGES"), out var changes) && changes > 0 ? changes : null;

    /// <param name="interleaveVolatiles">
    /// Also interleave at every <c>Volatile.Read</c>/<c>Write</c> (many more scheduling points): for a scenario aimed at a
    /// window between two volatile accesses with no atomic operation or lock between them.
    /// </param>
    /// <param name="priorityChanges">
    /// Explores with Coyote's prioritization (PCT) strategy, changing the tasks' priorities at most this many times per
    /// schedule, instead of the default random one: for a bug that needs one task held back over a long run of another's steps.
    /// </param>
    public static TestReport Explore(ITestOutputHelper output, string name, uint iterations, Func<Task> test, bool interleaveAtomics = true, bool interleaveVolatiles = false, uint? priorityChanges = null)
    {
        RewritingEngine.IsAssemblyRewritten(typeof(TaskTracker).Assembly).Should().BeTrue(
            "the library must be rewritten by 'coyote rewrite' (the build does it), or Coyote reports false deadlocks");
        RewritingEngine.IsAssemblyRewritten(typeof(CoyoteHarness).Assembly).Should().BeTrue(
            "the test assembly must be rewritten by 'coyote rewrite' (the build does it)");

        var seed = ReplaySeed ?? (Soak ? (uint)Random.Shared.Next() : 20261122u);
        var count = Soak ? iterations * 100 : iterations;
        if (IterationCap is { } cap && cap < count)
        {
            count = cap;
        }

        // A testing engine's report keeps every schedule it explored, as a string of tens of kilobytes, in its coverage
        // (about 9 MB a second of exploration here, whatever the scenario), and the engine stays reachable after its
        // disposal: Coyote 1.7.11 leaves its handler on AppDomain.UnhandledException. A soak of 100,000 schedules in one
        // engine outgrows a 24 GB machine. A long exploration therefore runs in engines of at most SoakChunk schedules
        // each, one after another, the next seeded from the one before, and each engine's explored-schedule set is emptied
        // once its figures are read. Each engine prints its seed (a bug's engine replays with CONCURRENCY_PRIMITIVES_SEED),
        // a bug or an internal error stops the run, and only the last report is kept: the one that failed, or the last.
        TestReport report;
        var chunkSeed = seed;
        var requested = 0u;
        var explored = 0L;
        var engines = 0;
        while (true)
        {
            var chunk = Math.Min(count - requested, SoakChunk);
            report = ExploreChunk(output, name, chunk, chunkSeed, count > SoakChunk, test, interleaveAtomics, interleaveVolatiles, priorityChanges);
            requested += chunk;
            explored += report.NumOfExploredFairPaths + report.NumOfExploredUnfairPaths;
            engines++;
            if (report.NumOfFoundBugs > 0 || report.InternalErrors.Count > 0 || requested >= count)
            {
                break;
            }

            chunkSeed = NextSeed(chunkSeed);
        }

        if (engines > 1)
        {
            output.WriteLine($"[coyote] {name}: {explored} iterations explored in {engines} engines (first seed {seed}), {report.NumOfFoundBugs} bug(s) found");
        }

        return report;
    }

    /// <summary>The most schedules one testing engine explores (see <see cref="Explore"/>).</summary>
    private const uint SoakChunk = 2_000;

    /// <summary>The seed of a long exploration's next engine (a fixed step of a 32-bit linear congruential generator).</summary>
    private static uint NextSeed(uint seed) => unchecked((seed * 1_664_525u) + 1_013_904_223u);

    private static TestReport ExploreChunk(ITestOutputHelper output, string name, uint count, uint seed, bool partOfMany, Func<Task> test, bool interleaveAtomics, bool interleaveVolatiles, uint? priorityChanges)
    {
        var configuration = Configuration.Create()
            .WithTestingIterations(count)
            .WithRandomGeneratorSeed(seed)
            .WithAtomicOperationRaceCheckingEnabled(interleaveAtomics)
            .WithMaxSchedulingSteps(5_000)
            .WithDeadlockTimeout(5_000)
            .WithConsoleLoggingEnabled(false)
            .WithTelemetryEnabled(false);

        if ((priorityChanges ?? PriorityChangesEverywhere) is { } changes)
        {
            configuration = configuration.WithPrioritizationStrategy(isFair: false, priorityChangeBound: changes);
        }

        if (interleaveVolatiles || VolatilesEverywhere)
        {
            configuration = configuration.WithVolatileOperationRaceCheckingEnabled(true);
        }

        using var engine = TestingEngine.Create(configuration, test);
        engine.Run();
        var report = engine.TestReport;
        output.WriteLine(
            $"[coyote] {name}: {report.NumOfExploredFairPaths + report.NumOfExploredUnfairPaths} iterations explored (seed {seed}{(partOfMany ? ", one engine of a longer run" : string.Empty)}), {report.NumOfFoundBugs} bug(s) found");
        foreach (var bug in report.BugReports)
        {
            output.WriteLine($"[coyote]   bug: {bug}");
        }

        if (report.NumOfFoundBugs > 0)
        {
            output.WriteLine("[coyote]   reproducible trace:");
            output.WriteLine(engine.ReproducibleTrace);
        }

        report.CoverageInfo.ExploredPaths.Clear();
        return report;
    }

    public static void ShouldHoldEverywhere(this TestReport report)
    {
        report.NumOfFoundBugs.Should().Be(0, "no schedule may break the invariant; bugs: {0}", string.Join(" | ", report.BugReports));
        report.InternalErrors.Should().BeEmpty();
    }

    /// <summary>Asserts that the exploration found the seeded bug: a report containing one of <paramref name="expectedMessageFragments"/>.</summary>
    public static void ShouldFindBug(this TestReport report, params string[] expectedMessageFragments)
    {
        report.NumOfFoundBugs.Should().BeGreaterThan(0, "the hand-rolled version is broken and Coyote must find a schedule that shows it");
        report.BugReports.Should().Contain(
            bug => expectedMessageFragments.Any(fragment => bug.Contains(fragment, StringComparison.Ordinal)),
            "the bug found must be the seeded one, not an artefact; found: {0}",
            string.Join(" | ", report.BugReports));
    }
}
