using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Analyzers;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;

// Usage: CorpusRunner <repository folder>...
// Compiles every .cs file of each folder (bin/ and obj/ left out) as one compilation against the shared framework's
// reference assemblies, with the SDK's implicit usings, runs the six analyzers, and prints each hit with its source line.
// Unresolved symbols (package dependencies, generated code) stay unresolved: the analyzers must cope with them.
var analyzers = ImmutableArray.Create<DiagnosticAnalyzer>(
    new CountRaisedInsideWorkAnalyzer(),
    new InlineContinuationsAnalyzer(),
    new CheckThenActFlagAnalyzer(),
    new DisposeBeforeLoopStopsAnalyzer(),
    new SubmitFromOwnDispatchAnalyzer(),
    new UnansweredBatchFaultAnalyzer());

var references = ReferenceAssemblies().Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToList();
var parseOptions = new CSharpParseOptions(LanguageVersion.Preview, preprocessorSymbols: new[] { "NET", "NETCOREAPP", "NET8_0_OR_GREATER", "NET6_0_OR_GREATER", "NETCOREAPP3_0_OR_GREATER", "RELEASE" });
const string ImplicitUsings = "global using System; global using System.Collections.Generic; global using System.IO; global using System.Linq; global using System.Net.Http; global using System.Threading; global using System.Threading.Tasks;";

var total = 0;
foreach (var root in args)
{
    var files = Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories)
        .Where(f => !f.Contains("/obj/", StringComparison.Ordinal) && !f.Contains("/bin/", StringComparison.Ordinal))
        .OrderBy(f => f, StringComparer.Ordinal)
        .ToList();
    var texts = files.Select(f => (Path: f, Text: File.ReadAllText(f))).ToList();
    var trees = texts.Select(t => CSharpSyntaxTree.ParseText(t.Text, parseOptions, t.Path)).ToList();
    trees.Add(CSharpSyntaxTree.ParseText(ImplicitUsings, parseOptions, "ImplicitUsings.g.cs"));
    var compilation = CSharpCompilation.Create(
        Path.GetFileName(root.TrimEnd('/')),
        trees,
        references,
        new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable, allowUnsafe: true));

    var clock = Stopwatch.StartNew();
    var withAnalyzers = compilation.WithAnalyzers(analyzers, new CompilationWithAnalyzersOptions(
        new AnalyzerOptions(ImmutableArray<AdditionalText>.Empty), onAnalyzerException: (e, a, d) => Console.WriteLine($"ANALYZER EXCEPTION {a}: {e}"), concurrentAnalysis: true, logAnalyzerExecutionTime: true));
    var diagnostics = await withAnalyzers.GetAnalyzerDiagnosticsAsync(CancellationToken.None);
    var elapsed = clock.Elapsed;

    var loc = texts.Sum(t => t.Text.Count(c => c == '\n'));
    Console.WriteLine($"## {Path.GetFileName(root.TrimEnd('/'))}: {files.Count} files, {loc} lines, {diagnostics.Length} hits, analyzers ran in {elapsed.TotalSeconds:F1} s");
    foreach (var diagnostic in diagnostics.OrderBy(d => d.Location.SourceTree?.FilePath, StringComparer.Ordinal).ThenBy(d => d.Location.SourceSpan.Start))
    {
        var span = diagnostic.Location.GetLineSpan();
        var relative = Path.GetRelativePath(root, span.Path);
        var line = diagnostic.Location.SourceTree!.GetText().Lines[span.StartLinePosition.Line].ToString().Trim();
        Console.WriteLine($"- {diagnostic.Id} {relative}:{span.StartLinePosition.Line + 1}: {diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture)}");
        Console.WriteLine($"    `{line}`");
    }

    total += diagnostics.Length;
}

Console.WriteLine($"total hits: {total}");

static IEnumerable<string> ReferenceAssemblies()
{
    var packs = Path.Combine(Path.GetDirectoryName(typeof(object).Assembly.Location)!, "..", "..", "..", "packs");
    foreach (var pack in new[] { "Microsoft.NETCore.App.Ref", "Microsoft.AspNetCore.App.Ref" })
    {
        var folder = Directory.EnumerateDirectories(Path.Combine(packs, pack)).OrderBy(d => d, StringComparer.Ordinal).Last();
        var reference = Directory.EnumerateDirectories(Path.Combine(folder, "ref")).Single();
        foreach (var dll in Directory.EnumerateFiles(reference, "*.dll"))
        {
            yield return dll;
        }
    }
}
