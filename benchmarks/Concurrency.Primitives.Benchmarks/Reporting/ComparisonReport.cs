using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace Concurrency.Primitives.Benchmarks.Reporting;

/// <summary>One line of the summary: one of our cases in one configuration, beside what it is compared with.</summary>
public sealed record Verdict(
    string Class,
    string Parameters,
    ResultRow Ours,
    ResultRow? HandRolled,
    ResultRow? BestAlternative,
    ResultRow? Floor,
    IReadOnlyList<(string Target, bool Met, string Detail)> Checks)
{
    public double? RatioTo(ResultRow? other) => other is null || other.MeanNs <= 0 ? null : Ours.MeanNs / other.MeanNs;

    public bool AllMet => Checks.All(c => c.Met);
}

/// <summary>
/// The summary a user reads after a comparison run, per class and configuration: ours, the hand-rolled code, the best
/// alternative and the floor, ours ÷ each, allocation per operation, and a verdict against <see cref="Targets"/>.
/// </summary>
public static class ComparisonReport
{
    public static IReadOnlyList<Verdict> Verdicts(IEnumerable<ResultRow> rows)
    {
        var verdicts = new List<Verdict>();
        foreach (var group in rows.GroupBy(r => (r.Class, r.Parameters)).OrderBy(g => ClassOrder(g.Key.Class)).ThenBy(g => g.Key.Parameters, StringComparer.Ordinal))
        {
            var handRolled = group.Where(r => r.Kind == CaseKind.HandRolled).MinBy(r => r.MeanNs);
            var alternative = group.Where(r => r.Kind == CaseKind.Alternative).MinBy(r => r.MeanNs);
            var floor = group.Where(r => r.Kind == CaseKind.Floor).MinBy(r => r.MeanNs);
            foreach (var ours in group.Where(r => r.Kind == CaseKind.Ours))
            {
                var checks = new List<(string, bool, string)>();
                Check(checks, "< 1.0× hand-rolled", ours, handRolled, Targets.HandRolled, strict: true);
                Check(checks, "< 1.0× best alternative", ours, alternative, Targets.BestAlternative, strict: true);
                Check(checks, "≤ 1.5× floor", ours, floor, Targets.Floor, strict: false);
                if (Targets.ZeroAllocation.Contains(group.Key.Class) && ours.AllocatedBytes is { } bytes)
                {
                    var met = bytes < 0.5; // BenchmarkDotNet divides by the operations per invoke: under half a byte is 0 B
                    checks.Add(("0 B per operation", met, met ? "met" : $"missed: {Bytes(bytes)}"));
                }

                verdicts.Add(new Verdict(group.Key.Class, group.Key.Parameters, ours, handRolled, alternative, floor, checks));
            }
        }

        return verdicts;
    }

    /// <summary>The summary as a Markdown table, one row per verdict.</summary>
    public static IReadOnlyList<string> Markdown(IReadOnlyList<Verdict> verdicts)
    {
        var lines = new List<string>
        {
            "| class | params | ours | time | hand-rolled | best alternative | floor | ours ÷ hand-rolled | ours ÷ best alt. | ours ÷ floor | allocated/op (ours, hand-rolled, alt.) | verdict |",
            "| --- | --- | --- | ---: | --- | --- | --- | ---: | ---: | ---: | --- | --- |",
        };
        foreach (var v in verdicts)
        {
            var cells = new[]
            {
                ShortClass(v.Class),
                Params(v.Parameters),
                v.Ours.Title,
                Time(v.Ours.MeanNs),
                Other(v.HandRolled),
                Other(v.BestAlternative),
                Other(v.Floor),
                Ratio(v.RatioTo(v.HandRolled)),
                Ratio(v.RatioTo(v.BestAlternative)),
                Ratio(v.RatioTo(v.Floor)),
                string.Join(", ", new[] { v.Ours, v.HandRolled, v.BestAlternative }.Select(r => r?.AllocatedBytes is { } b ? Bytes(b) : "—")),
                v.AllMet ? "**met**" : "missed: " + string.Join("; ", v.Checks.Where(c => !c.Met).Select(c => c.Target + " (" + c.Detail + ")")),
            };
            lines.Add("| " + string.Join(" | ", cells) + " |");
        }

        return lines;
    }

    public static string ShortClass(string type) => type.Replace("Benchmarks", string.Empty, StringComparison.Ordinal);

    public static string Params(string parameters) => parameters.Length == 0 ? "—" : parameters.Replace("&", ", ", StringComparison.Ordinal);

    public static string Time(double nanoseconds) => nanoseconds switch
    {
        < 1_000 => nanoseconds.ToString("0.0", CultureInfo.InvariantCulture) + " ns",
        < 1_000_000 => (nanoseconds / 1_000).ToString("0.00", CultureInfo.InvariantCulture) + " µs",
        _ => (nanoseconds / 1_000_000).ToString("0.00", CultureInfo.InvariantCulture) + " ms",
    };

    public static string Bytes(double bytes) => bytes.ToString("0", CultureInfo.InvariantCulture) + " B";

    private static string Other(ResultRow? row) => row is null ? "—" : $"{row.Title} {Time(row.MeanNs)}";

    private static string Ratio(double? ratio) => ratio is { } r ? r.ToString("0.00", CultureInfo.InvariantCulture) + "×" : "—";

    private static void Check(List<(string, bool, string)> checks, string target, ResultRow ours, ResultRow? other, double bound, bool strict)
    {
        if (other is null || other.MeanNs <= 0)
        {
            return;
        }

        var ratio = ours.MeanNs / other.MeanNs;
        var met = strict ? ratio < bound : ratio <= bound;
        checks.Add((target, met, met ? "met" : $"{ratio.ToString("0.00", CultureInfo.InvariantCulture)}×, {(ratio / bound).ToString("0.00", CultureInfo.InvariantCulture)}× the bound"));
    }

    private static int ClassOrder(string type) => type switch
    {
        nameof(TrackerRegisterDoneBenchmarks) => 0,
        nameof(TrackerGoCloseBenchmarks) => 1,
        nameof(GateStartRunningBenchmarks) => 2,
        nameof(GateCycleBenchmarks) => 3,
        nameof(BatcherBenchmarks) => 4,
        nameof(BatcherCallersBenchmarks) => 5,
        nameof(PumpBenchmarks) => 6,
        _ => 7,
    };
}
