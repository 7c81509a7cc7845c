using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Analyzers.Tests.TestSupport;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Testing;

namespace Concurrency.Primitives.Analyzers.Tests.Docs;

/// <summary>
/// Each C# example of the analyzers' README, verbatim, placed in the members it assumes, compiles and gets exactly the
/// diagnostics its comments announce (<c>// CP0001</c>), so the help pages cannot drift from the rules.
/// </summary>
public sealed class ReadmeExampleTests
{
    private const string Usings = "using System; using System.Collections.Generic; using System.IO; using System.Threading; using System.Threading.Channels; using System.Threading.Tasks; using Concurrency.Primitives;\n";

    // The members each section's example uses; {0} is the example.
    private static readonly Dictionary<string, string> Contexts = new()
    {
        ["CP0001"] = "class C { int _count; TaskCompletionSource _zero = new(TaskCreationOptions.RunContinuationsAsynchronously); void Work() { } void M() { {0} } }",
        ["CP0002"] = "class C { object _lock = new(); {0} }",
        ["CP0003"] = "class C { bool _started; Task ConnectAsync() => Task.CompletedTask; {0} }",
        ["CP0004"] = "class C { Stream _database = Stream.Null; CancellationTokenSource _cancellation = new(); Task _loop = Task.CompletedTask; {0} }",
        ["CP0005"] = "class C { Batcher<int, int> _batcher; C() { {0} } }",
        ["CP0006"] = "class Logger { public void LogError(Exception e, string m) { } } class C<TItem, TResult> { Logger _logger = new(); Func<List<(TItem, TaskCompletionSource<TResult>)>, Task> _dispatch; async Task M(ChannelReader<(TItem, TaskCompletionSource<TResult>)> reader) { {0} } }",
    };

    public static TheoryData<string> Sections() => new(Contexts.Keys);

    [Theory]
    [MemberData(nameof(Sections))]
    public async Task TheReadmeExample_CompilesAndIsReportedWhereItsCommentSays(string id)
    {
        var example = Examples().Single(e => e.Id == id).Code;
        var source = Usings + Contexts[id].Replace("{0}", example, StringComparison.Ordinal);
        var references = await ReferenceAssemblies.Net.Net80.ResolveAsync(LanguageNames.CSharp, CancellationToken.None);
        var compilation = CSharpCompilation.Create(
            "Readme",
            new[] { CSharpSyntaxTree.ParseText(source), CSharpSyntaxTree.ParseText(Stubs.Source) },
            references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).Should().BeEmpty(source);

        var analyzers = typeof(ConcurrencyAnalyzer).Assembly.GetTypes()
            .Where(t => !t.IsAbstract && typeof(DiagnosticAnalyzer).IsAssignableFrom(t))
            .Select(t => (DiagnosticAnalyzer)Activator.CreateInstance(t)!)
            .ToImmutableArray();
        var diagnostics = await compilation.WithAnalyzers(analyzers).GetAnalyzerDiagnosticsAsync();

        var announced = Regex.Matches(example, "// (CP\\d{4})").Select(m => m.Groups[1].Value).ToList();
        announced.Should().NotBeEmpty().And.OnlyContain(a => a == id);
        diagnostics.Select(d => d.Id).Should().Equal(announced, source);
        diagnostics.Select(d => d.Location.GetLineSpan().StartLinePosition.Line).Should()
            .Equal(Regex.Matches(source, "^.*// CP\\d{4}", RegexOptions.Multiline).Select(m => source[..m.Index].Count(c => c == '\n')));
    }

    [Fact]
    public void EveryRuleHasAHelpSection_ThatItsHelpLinkPointsTo()
    {
        var readme = File.ReadAllText(ReadmePath());
        foreach (var descriptor in typeof(Descriptors).GetFields().Select(f => (Microsoft.CodeAnalysis.DiagnosticDescriptor)f.GetValue(null)!))
        {
            var anchor = descriptor.HelpLinkUri[(descriptor.HelpLinkUri.IndexOf('#', StringComparison.Ordinal) + 1)..];
            var headings = Regex.Matches(readme, "^## (.+)$", RegexOptions.Multiline)
                .Select(m => Regex.Replace(m.Groups[1].Value.Trim().ToLowerInvariant(), "[^a-z0-9 -]", string.Empty).Replace(' ', '-'));
            headings.Should().Contain(anchor, $"{descriptor.Id}'s help link must open its README section");
            anchor.Should().StartWith(descriptor.Id.ToLowerInvariant());
        }

        Examples().Select(e => e.Id).Should().BeEquivalentTo(Contexts.Keys, "each rule's section shows one example");
    }

    private static IEnumerable<(string Id, string Code)> Examples()
    {
        var readme = File.ReadAllText(ReadmePath());
        foreach (Match section in Regex.Matches(readme, "^## (CP\\d{4}):.*?(?=^## |\\z)", RegexOptions.Multiline | RegexOptions.Singleline))
        {
            foreach (Match block in Regex.Matches(section.Value, "```csharp\\n(.*?)```", RegexOptions.Singleline))
            {
                yield return (section.Groups[1].Value, block.Groups[1].Value);
            }
        }
    }

    private static string ReadmePath()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var path = Path.Combine(directory.FullName, "src", "Concurrency.Primitives.Analyzers", "README.md");
            if (File.Exists(path))
            {
                return path;
            }
        }

        throw new InvalidOperationException("src/Concurrency.Primitives.Analyzers/README.md was not found above " + AppContext.BaseDirectory);
    }
}
