using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Concurrency.Primitives.Analyzers;

/// <summary>
/// CP0006: inside a loop, a try that uses a collection of TaskCompletionSources (or of items carrying one) has a catch
/// that neither rethrows, nor completes a TaskCompletionSource, nor touches that collection, and nothing after it does.
/// The README's CP0006 section lists the exact conditions.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class UnansweredBatchFaultAnalyzer : ConcurrencyAnalyzer
{
    /// <summary>Creates the analyzer.</summary>
    public UnansweredBatchFaultAnalyzer()
        : base(Descriptors.UnansweredBatchFault)
    {
    }

    /// <inheritdoc/>
    private protected override void Register(AnalysisContext context)
    {
        context.RegisterOperationAction(AnalyzeTry, OperationKind.Try);
    }

    private static void AnalyzeTry(OperationAnalysisContext context)
    {
        var attempt = (ITryOperation)context.Operation;
        if (attempt.Catches.IsEmpty || !InsideLoop(attempt))
        {
            return;
        }

        var batches = Symbols.DescendantsInSameFunction(attempt.Body)
            .Select(o => Symbols.ReferencedSymbol(o) is { } symbol && IsBatchOfWaiters(o.Type) ? symbol : null)
            .Where(s => s is not null)
            .Distinct(SymbolEqualityComparer.Default)
            .ToList();
        if (batches.Count == 0)
        {
            return;
        }

        if ((attempt.Finally is not null && Answers(attempt.Finally, batches!)) || AnsweredAfter(attempt, batches!))
        {
            return;
        }

        foreach (var handler in attempt.Catches)
        {
            if (!CatchesEverything(handler) || Answers(handler.Handler, batches!))
            {
                continue;
            }

            var location = handler.Syntax is CatchClauseSyntax clause ? clause.CatchKeyword.GetLocation() : handler.Syntax.GetLocation();
            context.ReportDiagnostic(Diagnostic.Create(Descriptors.UnansweredBatchFault, location, batches[0]!.Name));
        }
    }

    private static bool InsideLoop(IOperation operation) => Symbols.AncestorsInSameFunction(operation).Any(o => o is ILoopOperation);

    private static bool IsBatchOfWaiters(ITypeSymbol? type) => Symbols.IsOrCarriesCompletionSource(Symbols.ElementType(type));

    /// <summary>A catch of Exception (or of everything): a narrower catch lets other faults through.</summary>
    private static bool CatchesEverything(ICatchClauseOperation handler)
        => handler.ExceptionType is null || handler.ExceptionType.SpecialType == SpecialType.System_Object || Symbols.Is(handler.ExceptionType, "System", "Exception");

    /// <summary>A rethrow, a completion of any TaskCompletionSource, or any use of the batch (handing it to a helper that fails it).</summary>
    private static bool Answers(IOperation block, IReadOnlyCollection<ISymbol> batches)
        => block.DescendantsAndSelf().Any(o => o is IThrowOperation
            || (o is IInvocationOperation call && Symbols.IsCompletion(call))
            || (Symbols.ReferencedSymbol(o) is { } symbol && batches.Contains(symbol, SymbolEqualityComparer.Default)));

    /// <summary>A later statement of the same block answers (a sweep after the try).</summary>
    private static bool AnsweredAfter(ITryOperation attempt, IReadOnlyCollection<ISymbol> batches)
    {
        if (attempt.Parent is not IBlockOperation block)
        {
            return false;
        }

        var index = block.Operations.IndexOf(attempt);
        return block.Operations.Skip(index + 1).Any(next => Answers(next, batches));
    }
}
