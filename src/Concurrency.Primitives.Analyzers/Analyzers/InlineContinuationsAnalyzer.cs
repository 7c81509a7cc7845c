using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Concurrency.Primitives.Analyzers;

/// <summary>
/// CP0002: a TaskCompletionSource created without RunContinuationsAsynchronously whose completion is set under a lock
/// or in a loop over waiters. The README's CP0002 section lists the exact conditions.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class InlineContinuationsAnalyzer : ConcurrencyAnalyzer
{
    private const int RunContinuationsAsynchronously = 64;

    /// <summary>Creates the analyzer.</summary>
    public InlineContinuationsAnalyzer()
        : base(Descriptors.InlineContinuations)
    {
    }

    /// <inheritdoc/>
    private protected override void Register(AnalysisContext context)
    {
        context.RegisterCompilationStartAction(start =>
        {
            var options = start.Compilation.GetTypeByMetadataName("System.Threading.Tasks.TaskCreationOptions");
            if (options is null || options.GetMembers("RunContinuationsAsynchronously").IsEmpty)
            {
                return;
            }

            start.RegisterSymbolStartAction(AnalyzeType, SymbolKind.NamedType);
        });
    }

    private sealed class TypeState
    {
        public ConcurrentBag<(IObjectCreationOperation Creation, ISymbol? Storage)> Creations { get; } = new();

        // A completion's receiver symbol (null when it comes from a collection element), its TCS type, and where.
        public ConcurrentBag<(ISymbol? Receiver, ITypeSymbol Type, string Where)> Hazards { get; } = new();
    }

    private static void AnalyzeType(SymbolStartAnalysisContext context)
    {
        var state = new TypeState();
        var type = (INamedTypeSymbol)context.Symbol;

        // Nested types are analysed on their own: each operation counts for its innermost type only.
        bool Own(OperationAnalysisContext c) => SymbolEqualityComparer.Default.Equals(c.ContainingSymbol.ContainingType, type);
        context.RegisterOperationAction(c => { if (Own(c)) { CollectCreation(c, state); } }, OperationKind.ObjectCreation);
        context.RegisterOperationAction(c => { if (Own(c)) { CollectCompletion(c, state); } }, OperationKind.Invocation);
        context.RegisterSymbolEndAction(c => Report(c, state));
    }

    private static void CollectCreation(OperationAnalysisContext context, TypeState state)
    {
        var creation = (IObjectCreationOperation)context.Operation;
        if (!Symbols.IsTaskCompletionSource(creation.Type))
        {
            return;
        }

        var options = creation.Arguments.FirstOrDefault(a => a.Parameter?.Type.Name == "TaskCreationOptions");
        if (options is not null)
        {
            // An options value we cannot read is given the benefit of the doubt.
            if (options.Value.ConstantValue is not { HasValue: true, Value: int value } || (value & RunContinuationsAsynchronously) != 0)
            {
                return;
            }
        }

        state.Creations.Add((creation, Symbols.AssignedTo(creation)));
    }

    private static void CollectCompletion(OperationAnalysisContext context, TypeState state)
    {
        var completion = (IInvocationOperation)context.Operation;
        if (!Symbols.IsCompletion(completion) || completion.Instance is null)
        {
            return;
        }

        var receiver = Symbols.Strip(completion.Instance);
        var fromElement = LoopOverElements(receiver, completion);
        if (fromElement)
        {
            state.Hazards.Add((null, completion.TargetMethod.ContainingType, "in a loop over waiters"));
            return;
        }

        if (InsideLock(completion) && Symbols.ReferencedSymbol(receiver) is { } symbol)
        {
            state.Hazards.Add((symbol.OriginalDefinition, completion.TargetMethod.ContainingType, "under a lock"));
        }
    }

    /// <summary>The receiver is (a member of) the element of an enclosing foreach, or <c>list[i]</c> in an enclosing for.</summary>
    private static bool LoopOverElements(IOperation receiver, IOperation site)
    {
        var root = receiver;
        while (true)
        {
            switch (root)
            {
                case IFieldReferenceOperation { Instance: { } instance } when instance is not IInstanceReferenceOperation:
                    root = Symbols.Strip(instance);
                    continue;
                case IPropertyReferenceOperation { Instance: { } instance, Arguments.IsEmpty: true } when instance is not IInstanceReferenceOperation:
                    root = Symbols.Strip(instance);
                    continue;
            }

            break;
        }

        return Symbols.AncestorsInSameFunction(site).Any(current => current switch
        {
            IForEachLoopOperation forEach => root is ILocalReferenceOperation local && forEach.Locals.Contains(local.Local, SymbolEqualityComparer.Default),
            IForLoopOperation forLoop => IndexedByLoopLocal(root, forLoop),
            _ => false,
        });
    }

    private static bool IndexedByLoopLocal(IOperation element, IForLoopOperation loop)
    {
        var index = element switch
        {
            IArrayElementReferenceOperation array when array.Indices.Length == 1 => array.Indices[0],
            IPropertyReferenceOperation indexer when indexer.Arguments.Length == 1 => indexer.Arguments[0].Value,
            _ => null,
        };
        return index is not null && Symbols.Strip(index) is ILocalReferenceOperation local && loop.Locals.Contains(local.Local, SymbolEqualityComparer.Default);
    }

    private static bool InsideLock(IOperation site) => Symbols.AncestorsInSameFunction(site).Any(o => o is ILockOperation);

    private static void Report(SymbolAnalysisContext context, TypeState state)
    {
        if (state.Hazards.IsEmpty)
        {
            return;
        }

        foreach (var (creation, storage) in state.Creations)
        {
            var type = creation.Type;
            var hazard = state.Hazards.FirstOrDefault(h => SymbolEqualityComparer.Default.Equals(h.Type, type)
                && (h.Receiver is null || (storage is not null && SymbolEqualityComparer.Default.Equals(h.Receiver, storage.OriginalDefinition))));
            if (hazard.Where is not null)
            {
                context.ReportDiagnostic(Diagnostic.Create(Descriptors.InlineContinuations, creation.Syntax.GetLocation(), hazard.Where));
            }
        }
    }
}
