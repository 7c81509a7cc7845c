using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.NoEmit;

namespace Concurrency.Primitives.Benchmarks;

/// <summary>
/// <c>quick</c>: every class with a short job, then one table of ratios (ours vs the hand-rolled baseline vs the
/// alternatives). <c>smoke</c>: every benchmark once, in process, to prove they run (CI). Anything else is passed to
/// BenchmarkDotNet (for example <c>--filter '*'</c> for the full run with the default job).
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        var mode = args.FirstOrDefault();
        var rest = args.Skip(1).ToArray();
        if (mode == "quick")
        {
            var job = Job.ShortRun.WithWarmupCount(3).WithIterationCount(7).WithId("Quick");
            if (rest.Contains("--inProcess"))
            {
                job = job.WithToolchain(InProcessNoEmitToolchain.Instance);
                rest = rest.Where(a => a != "--inProcess").ToArray();
            }

            var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly)
                .Run(rest.Length == 0 ? new[] { "--filter", "*" } : rest, DefaultConfig.Instance.AddJob(job).WithOptions(ConfigOptions.DisableLogFile));
            return PrintComparison(summaries);
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

    /// <summary>Prints, and writes to BenchmarkDotNet.Artifacts/comparison.md, one row per benchmark case with its ratio to the baseline.</summary>
    private static int PrintComparison(IEnumerable<Summary> summaries)
    {
        var lines = new List<string>
        {
            "| class | case | params | mean | ratio to baseline | allocated/op |",
            "| --- | --- | --- | ---: | ---: | ---: |",
        };
        var failures = 0;
        foreach (var summary in summaries)
        {
            foreach (var group in summary.Reports.GroupBy(r => r.BenchmarkCase.Parameters.DisplayInfo))
            {
                var baseline = group.FirstOrDefault(r => r.BenchmarkCase.Descriptor.Baseline);
                var baselineMean = baseline?.ResultStatistics?.Mean;
                foreach (var report in group)
                {
                    if (report.ResultStatistics is null)
                    {
                        failures++;
                        continue;
                    }

                    var mean = report.ResultStatistics.Mean;
                    var ratio = baselineMean is > 0 ? (mean / baselineMean.Value).ToString("0.00", CultureInfo.InvariantCulture) : "-";
                    var allocated = report.GcStats.GetBytesAllocatedPerOperation(report.BenchmarkCase);
                    lines.Add(string.Format(
                        CultureInfo.InvariantCulture,
                        "| {0} | {1} | {2} | {3} | {4} | {5} |",
                        report.BenchmarkCase.Descriptor.Type.Name.Replace("Benchmarks", string.Empty, StringComparison.Ordinal),
                        report.BenchmarkCase.Descriptor.WorkloadMethodDisplayInfo,
                        report.BenchmarkCase.Parameters.DisplayInfo,
                        FormatTime(mean),
                        ratio,
                        allocated is null ? "-" : allocated.Value.ToString(CultureInfo.InvariantCulture) + " B"));
                }
            }
        }

        Console.WriteLine();
        Console.WriteLine("Comparison (ratios within one run; the baseline is the hand-rolled code):");
        foreach (var line in lines)
        {
            Console.WriteLine(line);
        }

        Directory.CreateDirectory("BenchmarkDotNet.Artifacts");
        File.WriteAllLines(Path.Combine("BenchmarkDotNet.Artifacts", "comparison.md"), lines);
        return failures == 0 ? 0 : 1;
    }

    private static string FormatTime(double nanoseconds) => nanoseconds switch
    {
        < 1_000 => nanoseconds.ToString("0.00", CultureInfo.InvariantCulture) + " ns",
        < 1_000_000 => (nanoseconds / 1_000).ToString("0.00", CultureInfo.InvariantCulture) + " µs",
        _ => (nanoseconds / 1_000_000).ToString("0.00", CultureInfo.InvariantCulture) + " ms",
    };
}
