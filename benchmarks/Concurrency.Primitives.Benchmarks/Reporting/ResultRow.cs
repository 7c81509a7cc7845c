using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Text.Json;

namespace Concurrency.Primitives.Benchmarks.Reporting;

/// <summary>One benchmark case's result: mean time and allocation per operation, and what it stands for.</summary>
public sealed record ResultRow(string Class, string Method, string Title, string Parameters, double MeanNs, double? AllocatedBytes, CaseKind Kind);

/// <summary>
/// Reads BenchmarkDotNet's own result files (<c>*-report-full-compressed.json</c>, written by its JSON exporter) into
/// rows, so that the summary and the charts can be made from a run's artifacts, or from a saved run, without running anything.
/// </summary>
public static class ResultReader
{
    /// <summary>Every row of every <c>*-report-full-compressed.json</c> under <paramref name="directory"/>.</summary>
    public static IReadOnlyList<ResultRow> ReadDirectory(string directory) =>
        Directory.GetFiles(directory, "*-report-full-compressed.json", SearchOption.AllDirectories)
            .OrderBy(f => f, StringComparer.Ordinal)
            .SelectMany(f => Read(File.ReadAllText(f)))
            .ToList();

    /// <summary>The rows of one BenchmarkDotNet JSON report; a case without statistics (it failed) is left out.</summary>
    public static IReadOnlyList<ResultRow> Read(string json)
    {
        using var document = JsonDocument.Parse(json);
        var rows = new List<ResultRow>();
        foreach (var benchmark in document.RootElement.GetProperty("Benchmarks").EnumerateArray())
        {
            if (!benchmark.TryGetProperty("Statistics", out var statistics) || statistics.ValueKind != JsonValueKind.Object)
            {
                continue;
            }

            var type = benchmark.GetProperty("Type").GetString()!;
            var method = benchmark.GetProperty("Method").GetString()!;
            double? allocated = null;
            if (benchmark.TryGetProperty("Memory", out var memory) && memory.ValueKind == JsonValueKind.Object
                && memory.TryGetProperty("BytesAllocatedPerOperation", out var bytes) && bytes.ValueKind == JsonValueKind.Number)
            {
                allocated = bytes.GetDouble();
            }

            rows.Add(new ResultRow(
                type,
                method,
                benchmark.GetProperty("MethodTitle").GetString()!.Trim('\''),
                benchmark.TryGetProperty("Parameters", out var parameters) ? parameters.GetString() ?? string.Empty : string.Empty,
                statistics.GetProperty("Mean").GetDouble(),
                allocated,
                KindOf(type, method)));
        }

        return rows;
    }

    /// <summary>The <see cref="CaseAttribute"/> of a benchmark method of this assembly.</summary>
    public static CaseKind KindOf(string type, string method)
    {
        var declaring = typeof(ResultReader).Assembly.GetTypes().FirstOrDefault(t => t.Name == type)
            ?? throw new InvalidOperationException($"No benchmark class '{type}' in this assembly: the result comes from another build.");
        var attribute = declaring.GetMethod(method, BindingFlags.Public | BindingFlags.Instance)?.GetCustomAttribute<CaseAttribute>()
            ?? throw new InvalidOperationException($"{type}.{method} has no [Case] attribute: say what it stands for in the comparison.");
        return attribute.Kind;
    }
}
