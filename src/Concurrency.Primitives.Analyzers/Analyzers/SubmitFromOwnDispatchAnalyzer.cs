using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Concurrency.Primitives.Analyzers;

/// <summary>
/// CP0005: the dispatch delegate passed to a Batcher's constructor calls SubmitAsync on that same batcher (the field,
/// property or local the new batcher is stored in). The README's CP0005 section lists the exact conditions.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class SubmitFromOwnDispatchAnalyzer : ConcurrencyAnalyzer
{
    /// <summary>Creates the analyzer.</summary>
    public SubmitFromOwnDispatchAnalyzer()
        : base(Descriptors.SubmitFromOwnDispatch)
    {
    }

    /// <inheritdoc/>
    private protected override void Register(AnalysisContext context)
    {
        context.RegisterCompilationStartAction(start =>
        {
            if (start.Compilation.GetTypeByMetadataName("Concurrency.Primitives.Batcher`2") is not null)
            {
                start.RegisterOperationAction(AnalyzeCreation, OperationKind.ObjectCreation);
            }
        });
    }

    private static void AnalyzeCreation(OperationAnalysisContext context)
    {
        var creation = (IObjectCreationOperation)context.Operation;
        if (!Symbols.IsBatcher(creation.Type) || creation.Arguments.Length == 0 || Symbols.AssignedTo(creation) is not { } batcher)
        {
            return;
        }

        var dispatch = Dispatch(creation.Arguments[0].Value);
        if (dispatch is null)
        {
            return;
        }

        // Nested lambdas count too: a submit from work the dispatch starts still waits on the same batcher.
        foreach (var submit in dispatch.DescendantsAndSelf().OfType<IInvocationOperation>())
        {
            if (submit.TargetMethod.Name == "SubmitAsync" && Symbols.IsBatcher(submit.TargetMethod.ContainingType)
                && SymbolEqualityComparer.Default.Equals(Symbols.ReferencedSymbol(submit.Instance)?.OriginalDefinition, batcher.OriginalDefinition))
            {
                context.ReportDiagnostic(Diagnostic.Create(Descriptors.SubmitFromOwnDispatch, submit.Syntax.GetLocation(), batcher.Name));
            }
        }
    }

    private static IOperation? Dispatch(IOperation argument)
    {
        var value = Symbols.Strip(argument);
        if (value is IDelegateCreationOperation creation)
        {
            value = creation.Target;
        }

        if (value is IAnonymousFunctionOperation function)
        {
            return function.Body;
        }

        // A method group naming a method of the same file.
        if (value is IMethodReferenceOperation reference && reference.Method.MethodKind == MethodKind.Ordinary)
        {
            var syntax = reference.Method.DeclaringSyntaxReferences.Select(r => r.GetSyntax()).OfType<MethodDeclarationSyntax>()
                .FirstOrDefault(s => s.SyntaxTree == argument.Syntax.SyntaxTree);
            return syntax is null ? null : argument.SemanticModel?.GetOperation(syntax);
        }

        return null;
    }
}
