using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Exporters.Json;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.NoEmit;
using Concurrency.Primitives.Benchmarks.Reporting;

namespace Concurrency.Primitives.Benchmarks;

/// <summary>
/// <c>quick</c>: one representative configuration per class with a short job, each case in its own process, then the
/// summary (ours, hand-rolled, best alternative, floor, ratios, allocation, verdict against the targets) and an SVG
/// chart per class. <c>full</c>: the same over every configuration. <c>report &lt;dir&gt;</c>: the summary and charts
/// again from a saved run's JSON reports, without running anything. <c>phases</c>: the batcher's time per item by phase
/// (see <see cref="BatcherPhases"/>). <c>rounds</c>: the Batcher class's shape round after round in one process, for quick comparisons of two builds (see <see cref="BatcherRounds"/>). <c>smoke</c>: every benchmark once, in process, to prove they run (CI). Anything else is passed to BenchmarkDotNet (for example <c>--filter '*'</c> with the default job).
/// </summary>
public static class Program
{
    private const string Artifacts = "BenchmarkDotNet.Artifacts";

    public static int Main(string[] args)
    {
        var mode = args.FirstOrDefault();
        var rest = args.Skip(1).ToArray();
        if (mode is "quick" or "full")
        {
            Profile.Quick = mode == "quick";
            var job = Job.ShortRun.WithWarmupCount(3).WithIterationCount(7).WithId(mode == "quick" ? "Quick" : "Full");
            if (rest.Contains("--inProcess"))
            {
                job = job.WithToolchain(InProcessNoEmitToolchain.Instance);
                rest = rest.Where(a => a != "--inProcess").ToArray();
            }

            var clock = Stopwatch.StartNew();
            var config = DefaultConfig.Instance.AddJob(job).AddExporter(JsonExporter.FullCompressed).WithOptions(ConfigOptions.DisableLogFile);
            var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(rest.Length == 0 ? new[] { "--filter", "*" } : rest, config).ToList();
            var failed = summaries.Sum(s => s.Reports.Count(r => !r.Success || r.ResultStatistics is null));
            var directory = summaries.Select(s => s.ResultsDirectoryPath).FirstOrDefault() ?? Path.Combine(Artifacts, "results");
            Report(directory, Path.Combine(Artifacts, "comparison"), $"`-- {mode}` took {clock.Elapsed.TotalMinutes:0.0} min");
            return failed == 0 ? 0 : 1;
        }

        if (mode == "report")
        {
            if (rest.Length == 0 || !Directory.Exists(rest[0]))
            {
                Console.Error.WriteLine("usage: report <folder with BenchmarkDotNet *-report-full-compressed.json files> [output folder] [--png]");
                return 2;
            }

            var png = rest.Contains("--png");
            rest = rest.Where(a => a != "--png").ToArray();
            Report(rest[0], rest.Length > 1 ? rest[1] : Path.Combine(Artifacts, "comparison"), heading: null, png);
            return 0;
        }

        if (mode == "phases")
        {
#pragma warning disable VSTHRD002 // a console program's entry point: nothing else runs on this thread
            return BatcherPhases.RunAsync(rest).GetAwaiter().GetResult();
#pragma warning restore VSTHRD002
        }

        if (mode == "rounds")
        {
#pragma warning disable VSTHRD002 // a console program's entry point: nothing else runs on this thread
            return BatcherRounds.RunAsync(rest).GetAwaiter().GetResult();
#pragma warning restore VSTHRD002
        }

        if (mode == "smoke")
        {
            var job = Job.Dry.WithToolchain(InProcessNoEmitToolchain.Instance).WithId("Smoke");
            var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly)
                .Run(rest.Length == 0 ? new[] { "--filter", "*" } : rest, DefaultConfig.Instance.AddJob(job).WithOptions(ConfigOptions.DisableLogFile));
            var failed = summaries.Sum(s => s.Reports.Count(r => !r.Success)) + summaries.Sum(s => s.ValidationErrors.Count(e => e.IsCritical));
            var ran = summaries.Sum(s => s.Reports.Length);
            Console.WriteLine($"benchmark smoke: {ran} benchmark cases ran, {failed} failed");
            return failed == 0 && ran > 0 ? 0 : 1;
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }

    /// <summary>Prints the summary, and writes it (<c>summary.md</c>) and one chart per class (<c>&lt;class&gt;.svg</c>) into <paramref name="output"/>.</summary>
    public static IReadOnlyList<string> Report(string results, string output, string? heading, bool png = false)
    {
        var rows = ResultReader.ReadDirectory(results);
        var verdicts = ComparisonReport.Verdicts(rows);
        var lines = new List<string>();
        if (heading is not null)
        {
            lines.Add(heading + ".");
            lines.Add(string.Empty);
        }

        lines.Add($"Targets (ratios within this run): ours < {Targets.HandRolled:0.0}× the hand-rolled code, < {Targets.BestAlternative:0.0}× the best alternative, ≤ {Targets.Floor:0.0}× the floor, and 0 B per operation where the primitive promises it.");
        lines.Add(string.Empty);
        lines.AddRange(ComparisonReport.Markdown(verdicts));
        lines.Add(string.Empty);
        lines.Add($"{verdicts.Count(v => v.AllMet)} of {verdicts.Count} rows meet every target.");

        Directory.CreateDirectory(output);
        var charts = ChartWriter.Write(rows, output, png);
        File.WriteAllLines(Path.Combine(output, "summary.md"), lines);
        Console.WriteLine();
        foreach (var line in lines)
        {
            Console.WriteLine(line);
        }

        Console.WriteLine();
        Console.WriteLine($"Summary and charts: {Path.GetFullPath(output)} ({string.Join(", ", charts.Select(Path.GetFileName))})");
        return charts;
    }
}
