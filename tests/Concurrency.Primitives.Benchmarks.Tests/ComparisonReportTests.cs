using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Xml.Linq;
using BenchmarkDotNet.Attributes;
using Concurrency.Primitives.Benchmarks;
using Concurrency.Primitives.Benchmarks.Reporting;

namespace Concurrency.Primitives.Benchmarks.Tests;

/// <summary>
/// The comparison's summary and charts, made from a saved BenchmarkDotNet run (<c>Data/quick</c>: the JSON reports of a
/// real <c>-- quick</c> run on the 2-core machine), so that nothing is measured here.
/// </summary>
public sealed class ComparisonReportTests : IDisposable
{
    private static readonly string SavedRun = Path.Combine(AppContext.BaseDirectory, "Data", "quick");
    private readonly string _output = Path.Combine(Path.GetTempPath(), "comparison-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_output))
        {
            Directory.Delete(_output, recursive: true);
        }
    }

    [Fact]
    public void EveryBenchmarkMethod_SaysWhatItStandsFor_AndEveryClassHasOneOfOursAndAHandRolledCase()
    {
        var classes = typeof(Program).Assembly.GetTypes().Where(t => t.GetMethods().Any(m => m.GetCustomAttribute<BenchmarkAttribute>() is not null)).ToList();
        classes.Should().HaveCount(8);
        foreach (var type in classes)
        {
            var methods = type.GetMethods().Where(m => m.GetCustomAttribute<BenchmarkAttribute>() is not null).ToList();
            methods.Should().OnlyContain(m => m.GetCustomAttribute<CaseAttribute>() != null, $"every case of {type.Name} has a [Case]");
            var kinds = methods.Select(m => m.GetCustomAttribute<CaseAttribute>()!.Kind).ToList();
            kinds.Should().Contain(CaseKind.Ours).And.Contain(CaseKind.HandRolled);
        }
    }

    [Fact]
    public void TheSavedQuickRun_IsReadWithEveryCase_OneConfigurationPerClass()
    {
        var rows = ResultReader.ReadDirectory(SavedRun);

        rows.Should().HaveCount(25);
        rows.GroupBy(r => r.Class).Should().HaveCount(6).And.OnlyContain(g => g.Select(r => r.Parameters).Distinct().Count() == 1);
        rows.Should().OnlyContain(r => r.MeanNs > 0 && r.AllocatedBytes != null);
        rows.Single(r => r.Class == nameof(BatcherBenchmarks) && r.Kind == CaseKind.Ours).Parameters.Should().Be("BatchSize=16&Dispatches=2");
    }

    [Fact]
    public void EachVerdict_ComparesOurCaseWithTheHandRolledCase_TheFastestAlternative_AndTheFloor_OfItsOwnRun()
    {
        var rows = ResultReader.ReadDirectory(SavedRun);

        var verdicts = ComparisonReport.Verdicts(rows);

        verdicts.Should().HaveCount(rows.Count(r => r.Kind == CaseKind.Ours)).And.HaveCount(8);
        foreach (var verdict in verdicts)
        {
            var own = rows.Where(r => r.Class == verdict.Class && r.Parameters == verdict.Parameters).ToList();
            verdict.HandRolled.Should().Be(own.Where(r => r.Kind == CaseKind.HandRolled).MinBy(r => r.MeanNs));
            verdict.BestAlternative.Should().Be(own.Where(r => r.Kind == CaseKind.Alternative).MinBy(r => r.MeanNs));
            verdict.Floor.Should().Be(own.SingleOrDefault(r => r.Kind == CaseKind.Floor));
            verdict.RatioTo(verdict.HandRolled).Should().BeApproximately(verdict.Ours.MeanNs / verdict.HandRolled!.MeanNs, 1e-9);
            foreach (var check in verdict.Checks.Where(c => c.Target.Contains("hand-rolled", StringComparison.Ordinal)))
            {
                check.Met.Should().Be(verdict.Ours.MeanNs < verdict.HandRolled.MeanNs);
            }
        }

        verdicts.Single(v => v.Class == nameof(TrackerRegisterDoneBenchmarks) && v.Ours.Method == "TrackerAddDone").Floor!.Title.Should().Be("Interlocked pair (floor)");
        verdicts.Single(v => v.Class == nameof(GateCycleBenchmarks) && v.Ours.Title == "LifecycleGate start+stop").BestAlternative.Should().BeNull("the class has no alternative");
    }

    [Fact]
    public void AVerdict_SaysWhichTargetsAreMissed_AndByHowMuch()
    {
        var rows = new[]
        {
            new ResultRow(nameof(BatcherBenchmarks), "Batcher", "Batcher", "BatchSize=16", 90, 8, CaseKind.Ours),
            new ResultRow(nameof(BatcherBenchmarks), "HandRolled", "hand-rolled", "BatchSize=16", 100, 150, CaseKind.HandRolled),
            new ResultRow(nameof(BatcherBenchmarks), "Dataflow", "Dataflow", "BatchSize=16", 75, 120, CaseKind.Alternative),
            new ResultRow(nameof(BatcherBenchmarks), "Slow", "slow alternative", "BatchSize=16", 500, 0, CaseKind.Alternative),
            new ResultRow(nameof(BatcherBenchmarks), "Floor", "floor", "BatchSize=16", 50, 0, CaseKind.Floor),
            new ResultRow(nameof(GateCycleBenchmarks), "Gate", "gate", string.Empty, 10, 100, CaseKind.Ours),
            new ResultRow(nameof(GateCycleBenchmarks), "Mutex", "mutex", string.Empty, 20, 0, CaseKind.HandRolled),
        };

        var verdicts = ComparisonReport.Verdicts(rows);

        var batcher = verdicts.Single(v => v.Class == nameof(BatcherBenchmarks));
        batcher.AllMet.Should().BeFalse();
        batcher.Checks.Select(c => (c.Target, c.Met)).Should().Equal(
            ("< 1.0× hand-rolled", true),
            ("< 1.0× best alternative", false),
            ("≤ 1.5× floor", false),
            ("0 B per operation", false));
        batcher.Checks[1].Detail.Should().Be("1.20×, 1.20× the bound");
        batcher.Checks[2].Detail.Should().Be("1.80×, 1.20× the bound");
        batcher.Checks[3].Detail.Should().Be("missed: 8 B");
        var gate = verdicts.Single(v => v.Class == nameof(GateCycleBenchmarks));
        gate.AllMet.Should().BeTrue("0.5× the hand-rolled code, no alternative, no floor, and no 0 B promise");
        var markdown = ComparisonReport.Markdown(verdicts);
        markdown.Should().HaveCount(4);
        markdown[2].Should().StartWith("| GateCycle |").And.EndWith("| **met** |", "the classes come in the table's order: trackers, gates, batcher, pump");
        markdown[3].Should().StartWith("| Batcher |").And.Contain("missed: < 1.0× best alternative (1.20×, 1.20× the bound)").And.Contain("| 1.80× |");
    }

    [Fact]
    public void TheReport_WritesTheSummary_AndOneWellFormedSvgPerClass_WithBothPanelsAndEveryCaseInTheLegend()
    {
        var charts = Program.Report(SavedRun, _output, heading: "saved run");

        var summary = File.ReadAllLines(Path.Combine(_output, "summary.md"));
        summary.Should().Contain(l => l.StartsWith("| TrackerRegisterDone |", StringComparison.Ordinal));
        summary.Last().Should().MatchRegex(@"^\d of 8 rows meet every target\.$");
        charts.Select(Path.GetFileName).Should().BeEquivalentTo(
            "TrackerRegisterDone.svg", "TrackerGoClose.svg", "GateStartRunning.svg", "GateCycle.svg", "Batcher.svg", "Pump.svg");
        var rows = ResultReader.ReadDirectory(SavedRun);
        foreach (var chart in charts)
        {
            var svg = XDocument.Load(chart); // throws if the file is not well-formed XML
            XNamespace ns = "http://www.w3.org/2000/svg";
            svg.Root!.Name.Should().Be(ns + "svg");
            svg.Root.Elements(ns + "svg").Should().HaveCount(2, "time per operation above, allocation below");
            var texts = svg.Descendants().Where(e => e.Name.LocalName == "text").Select(e => e.Value.Trim()).ToList();
            var type = rows.First(r => ComparisonReport.ShortClass(r.Class) + ".svg" == Path.GetFileName(chart)).Class;
            texts.Should().Contain($"{ComparisonReport.ShortClass(type)}: time per operation").And.Contain($"{ComparisonReport.ShortClass(type)}: allocation per operation");
            foreach (var row in rows.Where(r => r.Class == type))
            {
                texts.Count(t => t == row.Title || t.StartsWith(row.Title + " (", StringComparison.Ordinal)).Should().Be(2, $"'{row.Title}' is in the legend of both panels");
                texts.Should().Contain(ComparisonReport.Time(row.MeanNs), "each bar carries its value");
            }
        }
    }
}
