using System.Threading.Tasks;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp.Testing;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Testing;

namespace Concurrency.Primitives.Analyzers.Tests.TestSupport;

/// <summary>
/// Runs an analyzer (and a code fix) over test sources compiled against the .NET 8 reference assemblies and the stubs of
/// <see cref="Stubs"/>; marked spans (<c>{|CP0001:…|}</c>) are the expected diagnostics, and no other may appear.
/// </summary>
public static class Verify<TAnalyzer>
    where TAnalyzer : DiagnosticAnalyzer, new()
{
    public static Task AnalyzerAsync(string source)
    {
        var test = new CSharpAnalyzerTest<TAnalyzer, DefaultVerifier>
        {
            TestCode = source,
            ReferenceAssemblies = ReferenceAssemblies.Net.Net80,
        };
        test.TestState.Sources.Add(("Stubs.cs", Stubs.Source));
        return test.RunAsync();
    }

    /// <summary>
    /// Applies the fix (the code action with <paramref name="equivalenceKey"/>, or the only one) once per diagnostic
    /// (<paramref name="iterations"/>) and, where the fix has one, as one fix-all; checks the result compiles and is <paramref name="fixedSource"/>.
    /// </summary>
    public static Task CodeFixAsync<TCodeFix>(string source, string fixedSource, string? equivalenceKey = null, int iterations = 1)
        where TCodeFix : CodeFixProvider, new()
    {
        var test = new CSharpCodeFixTest<TAnalyzer, TCodeFix, DefaultVerifier>
        {
            TestCode = source,
            FixedCode = fixedSource,
            ReferenceAssemblies = ReferenceAssemblies.Net.Net80,
            CodeActionEquivalenceKey = equivalenceKey,
            NumberOfFixAllIterations = 1,
            NumberOfIncrementalIterations = iterations,
        };
        test.TestState.Sources.Add(("Stubs.cs", Stubs.Source));
        test.FixedState.Sources.Add(("Stubs.cs", Stubs.Source));
        return test.RunAsync();
    }
}
