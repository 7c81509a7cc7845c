using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Concurrency.Primitives.Analyzers;

/// <summary>What every rule of this assembly shares: one diagnostic, generated code skipped, concurrent execution.</summary>
public abstract class ConcurrencyAnalyzer : DiagnosticAnalyzer
{
    private protected ConcurrencyAnalyzer(DiagnosticDescriptor descriptor) => SupportedDiagnostics = ImmutableArray.Create(descriptor);

    /// <inheritdoc/>
    public sealed override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics { get; }

    /// <inheritdoc/>
    public sealed override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        Register(context);
    }

    /// <summary>Registers the rule's actions.</summary>
    private protected abstract void Register(AnalysisContext context);
}
