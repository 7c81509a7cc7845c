using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using ScottPlot;

namespace Concurrency.Primitives.Benchmarks.Reporting;

/// <summary>
/// One SVG per benchmark class: grouped bars, one group per configuration and one colour per case, time per operation
/// on top (log scale when the cases span more than 10×) and allocation per operation below; the floor's bars are
/// hatched green and each group's floor time is marked with a dashed line across the group. Drawn with ScottPlot 5.
/// </summary>
public static class ChartWriter
{
    private const int Width = 960;
    private const int PanelHeight = 380;

    private static readonly Color[] Palette =
    {
        Color.FromHex("#1f77b4"), Color.FromHex("#ff7f0e"), Color.FromHex("#9467bd"), Color.FromHex("#8c564b"),
        Color.FromHex("#e377c2"), Color.FromHex("#17becf"), Color.FromHex("#bcbd22"),
    };

    private static readonly Color OursColor = Color.FromHex("#d62728");
    private static readonly Color HandRolledColor = Color.FromHex("#7f7f7f");
    private static readonly Color FloorColor = Color.FromHex("#2ca02c");

    /// <summary>
    /// Writes <c>&lt;class&gt;.svg</c> for every class in <paramref name="rows"/>, and with <paramref name="png"/> each
    /// panel as a PNG too (<c>&lt;class&gt;-time.png</c>, <c>&lt;class&gt;-allocation.png</c>, for viewers without SVG);
    /// returns the SVGs' paths.
    /// </summary>
    public static IReadOnlyList<string> Write(IEnumerable<ResultRow> rows, string directory, bool png = false)
    {
        Directory.CreateDirectory(directory);
        var paths = new List<string>();
        foreach (var byClass in rows.GroupBy(r => r.Class))
        {
            var name = ComparisonReport.ShortClass(byClass.Key);
            var (time, allocation) = Panels(byClass.Key, byClass.ToList());
            var path = Path.Combine(directory, name + ".svg");
            File.WriteAllText(path, Stack(time.GetSvgXml(Width, PanelHeight), allocation.GetSvgXml(Width, PanelHeight)));
            if (png)
            {
                time.SavePng(Path.Combine(directory, name + "-time.png"), Width, PanelHeight);
                allocation.SavePng(Path.Combine(directory, name + "-allocation.png"), Width, PanelHeight);
            }

            paths.Add(path);
        }

        return paths;
    }

    /// <summary>The two panels of one class's chart: time per operation, and allocation per operation.</summary>
    private static (Plot Time, Plot Allocation) Panels(string type, IReadOnlyList<ResultRow> rows)
    {
        var cases = rows.Select(r => (r.Method, r.Title, r.Kind)).Distinct().OrderBy(c => KindOrder(c.Kind)).ThenBy(c => c.Title, StringComparer.Ordinal).ToList();
        var configurations = rows.Select(r => r.Parameters).Distinct().ToList();
        var colours = ColoursOf(cases.Select(c => (c.Method, c.Kind)).ToList());

        var time = Panel(
            $"{ComparisonReport.ShortClass(type)}: time per operation",
            rows,
            cases,
            configurations,
            colours,
            r => r.MeanNs,
            ComparisonReport.Time,
            "time per operation",
            markFloor: true);
        var allocation = Panel(
            $"{ComparisonReport.ShortClass(type)}: allocation per operation",
            rows,
            cases,
            configurations,
            colours,
            r => r.AllocatedBytes ?? 0,
            ComparisonReport.Bytes,
            "bytes per operation",
            markFloor: false);
        return (time, allocation);
    }

    private static Plot Panel(
        string title,
        IReadOnlyList<ResultRow> rows,
        IReadOnlyList<(string Method, string Title, CaseKind Kind)> cases,
        IReadOnlyList<string> configurations,
        IReadOnlyDictionary<string, Color> colours,
        Func<ResultRow, double> value,
        Func<double, string> label,
        string axis,
        bool markFloor)
    {
        var values = rows.Select(value).Where(v => v > 0).ToList();
        var log = values.Count > 0 && values.Max() / values.Min() > 10;
        var floorOfAxis = log ? Math.Floor(Math.Log10(values.Min())) : 0; // the axis starts one decade at most below the smallest bar
        var plot = new Plot();
        var bars = new List<Bar>();
        var groupWidth = cases.Count + 1;
        for (var g = 0; g < configurations.Count; g++)
        {
            for (var c = 0; c < cases.Count; c++)
            {
                var row = rows.FirstOrDefault(r => r.Parameters == configurations[g] && r.Method == cases[c].Method);
                if (row is null)
                {
                    continue;
                }

                var v = value(row);
                bars.Add(new Bar
                {
                    Position = (g * groupWidth) + c,
                    Value = log ? Math.Max(Math.Log10(Math.Max(v, double.Epsilon)), floorOfAxis) : v,
                    ValueBase = floorOfAxis,
                    FillColor = colours[cases[c].Method],
                    FillHatch = cases[c].Kind == CaseKind.Floor ? new ScottPlot.Hatches.Striped() : null,
                    FillHatchColor = Colors.White.WithAlpha(0.6),
                    Label = label(v),
                });
            }

            var floor = rows.FirstOrDefault(r => r.Parameters == configurations[g] && r.Kind == CaseKind.Floor);
            if (markFloor && floor is not null)
            {
                var y = log ? Math.Max(Math.Log10(Math.Max(value(floor), double.Epsilon)), floorOfAxis) : value(floor);
                var line = plot.Add.Line(g * groupWidth - 0.5, y, (g * groupWidth) + cases.Count - 0.5, y);
                line.LineColor = FloorColor;
                line.LinePattern = LinePattern.Dashed;
                line.LineWidth = 1.5f;
            }
        }

        var barPlot = plot.Add.Bars(bars);
        barPlot.ValueLabelStyle.FontSize = 9;
        foreach (var c in cases)
        {
            var kind = Describe(c.Kind);
            var text = c.Title.Contains("(" + kind, StringComparison.Ordinal) ? c.Title : $"{c.Title} ({kind})";
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = text, FillColor = colours[c.Method] });
        }

        plot.Legend.IsVisible = true;
        plot.Legend.Alignment = Alignment.UpperRight;
        plot.Legend.FontSize = 10;
        plot.ShowLegend(Edge.Right);
        plot.Axes.Bottom.SetTicks(
            Enumerable.Range(0, configurations.Count).Select(g => (g * groupWidth) + ((cases.Count - 1) / 2.0)).ToArray(),
            configurations.Select(c => c.Length == 0 ? "(one configuration)" : ComparisonReport.Params(c)).ToArray());
        if (log)
        {
            var ticks = new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = y => label(Math.Pow(10, y)), IntegerTicksOnly = true };
            plot.Axes.Left.TickGenerator = ticks;
        }

        plot.Axes.Margins(bottom: 0);
        plot.Title(title, size: 14);
        plot.YLabel(axis + (log ? " (log scale)" : string.Empty), size: 12);
        return plot;
    }

    private static string Stack(string top, string bottom)
    {
        // Two complete SVG documents, nested in one: the inner roots keep their own size and are placed one below the other.
        static string Inner(string svg, int y)
        {
            var start = svg.IndexOf("<svg", StringComparison.Ordinal);
            return string.Concat("<svg x=\"0\" y=\"", y.ToString(CultureInfo.InvariantCulture), "\"", svg.AsSpan(start + 4));
        }

        return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + Width.ToString(CultureInfo.InvariantCulture) + "\" height=\"" + (2 * PanelHeight).ToString(CultureInfo.InvariantCulture) + "\">\n"
            + Inner(top, 0) + "\n" + Inner(bottom, PanelHeight) + "\n</svg>\n";
    }

    private static Dictionary<string, Color> ColoursOf(IReadOnlyList<(string Method, CaseKind Kind)> cases)
    {
        var colours = new Dictionary<string, Color>();
        var next = 0;
        var ours = 0;
        foreach (var (method, kind) in cases)
        {
            colours[method] = kind switch
            {
                CaseKind.Ours => ours++ == 0 ? OursColor : Color.FromHex("#ff9896"),
                CaseKind.HandRolled => HandRolledColor,
                CaseKind.Floor => FloorColor,
                _ => Palette[next++ % Palette.Length],
            };
        }

        return colours;
    }

    private static int KindOrder(CaseKind kind) => kind switch
    {
        CaseKind.Ours => 0,
        CaseKind.HandRolled => 1,
        CaseKind.Alternative => 2,
        _ => 3,
    };

    private static string Describe(CaseKind kind) => kind switch
    {
        CaseKind.Ours => "ours",
        CaseKind.HandRolled => "hand-rolled",
        CaseKind.Alternative => "alternative",
        _ => "floor",
    };
}
