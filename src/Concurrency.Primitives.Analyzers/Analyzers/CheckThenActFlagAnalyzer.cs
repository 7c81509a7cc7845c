using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Concurrency.Primitives.Analyzers;

/// <summary>
/// CP0003: a start or stop method that tests a bool/int field and sets it later, with an await between or on a
/// flag declared for concurrent use, and nothing making check and set one step. The README's CP0003 section lists the
/// exact conditions.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class CheckThenActFlagAnalyzer : ConcurrencyAnalyzer
{
    // Calls that take a lock or a semaphore: after one of them, the method is assumed to hold exclusive access.
    private static readonly ImmutableHashSet<string> AcquireMethods = ImmutableHashSet.Create(
        System.StringComparer.Ordinal,
        "Wait", "WaitAsync", "WaitOne", "Enter", "TryEnter", "EnterWriteLock", "EnterUpgradeableReadLock", "TryEnterWriteLock",
        "LockAsync", "Lock", "AcquireAsync", "Acquire", "AcquireLockAsync", "EnterAsync", "TryEnterAsync", "WriterLockAsync");

    /// <summary>Creates the analyzer.</summary>
    public CheckThenActFlagAnalyzer()
        : base(Descriptors.CheckThenActFlag)
    {
    }

    /// <inheritdoc/>
    private protected override void Register(AnalysisContext context)
    {
        context.RegisterOperationAction(AnalyzeMethod, OperationKind.MethodBody);
    }

    private static void AnalyzeMethod(OperationAnalysisContext context)
    {
        if (context.ContainingSymbol is not IMethodSymbol { MethodKind: MethodKind.Ordinary } method
            || !(method.Name.StartsWith("Start", System.StringComparison.Ordinal) || method.Name.StartsWith("Stop", System.StringComparison.Ordinal)))
        {
            return;
        }

        var operations = Symbols.DescendantsInSameFunction(context.Operation).ToList();
        foreach (var check in operations.OfType<IConditionalOperation>())
        {
            if (check.IsRef || check.Condition is null)
            {
                continue;
            }

            foreach (var read in Symbols.DescendantsInSameFunction(check.Condition).Prepend(check.Condition).OfType<IFieldReferenceOperation>())
            {
                var field = read.Field;
                if (!IsFlag(field) || !(read.Instance is null or IInstanceReferenceOperation))
                {
                    continue;
                }

                var write = FirstWriteAfter(operations, field, check);
                if (write is null || Guarded(operations, field, check, write))
                {
                    continue;
                }

                var awaitBetween = operations.OfType<IAwaitOperation>()
                    .Any(a => a.Syntax.SpanStart >= check.Condition.Syntax.Span.End && a.Syntax.Span.End <= write.Syntax.SpanStart);
                var atomicRead = field.IsVolatile || read.Parent is IArgumentOperation { Parent: IInvocationOperation call } && Symbols.IsVolatile(call.TargetMethod);
                if (awaitBetween || atomicRead)
                {
                    var how = awaitBetween ? "after an await" : "with no lock or compare-and-swap between";
                    context.ReportDiagnostic(Diagnostic.Create(Descriptors.CheckThenActFlag, read.Syntax.GetLocation(), method.Name, field.Name, how));
                    return;
                }
            }
        }
    }

    private static bool IsFlag(IFieldSymbol field)
        => !field.IsConst && !field.IsReadOnly && field.Type.SpecialType is SpecialType.System_Boolean or SpecialType.System_Int32 or SpecialType.System_Int64;

    /// <summary>
    /// The first write of the field after the check that the check guards: inside its true branch, or after it when the
    /// true branch leaves the method (an early return or throw).
    /// </summary>
    private static IOperation? FirstWriteAfter(System.Collections.Generic.List<IOperation> operations, IFieldSymbol field, IConditionalOperation check)
    {
        var exits = check.WhenTrue is { } whenTrue && whenTrue.DescendantsAndSelf().Any(o => o is IReturnOperation or IThrowOperation);
        foreach (var operation in operations)
        {
            if (operation.Syntax.SpanStart < check.Condition.Syntax.Span.End || !IsWriteOf(operation, field))
            {
                continue;
            }

            var inTrueBranch = check.WhenTrue is not null && check.WhenTrue.Syntax.Span.Contains(operation.Syntax.Span);
            var afterCheck = operation.Syntax.SpanStart >= check.Syntax.Span.End;
            if (inTrueBranch || (exits && afterCheck))
            {
                return operation;
            }
        }

        return null;
    }

    private static bool IsWriteOf(IOperation operation, IFieldSymbol field) => operation switch
    {
        ISimpleAssignmentOperation assignment => Symbols.ReferencedSymbol(assignment.Target) is IFieldSymbol target && SymbolEqualityComparer.Default.Equals(target, field.OriginalDefinition),
        IInvocationOperation { TargetMethod.Name: "Write" } call when Symbols.IsVolatile(call.TargetMethod) && call.Arguments.Length > 0
            => Symbols.ReferencedSymbol(call.Arguments[0].Value) is IFieldSymbol target && SymbolEqualityComparer.Default.Equals(target, field.OriginalDefinition),
        _ => false,
    };

    /// <summary>Check and set under one lock statement, a compare-and-swap on the flag, or a lock taken before the check.</summary>
    private static bool Guarded(System.Collections.Generic.List<IOperation> operations, IFieldSymbol field, IConditionalOperation check, IOperation write)
    {
        for (var current = check.Parent; current is not null; current = current.Parent)
        {
            if (current is ILockOperation && current.Syntax.Span.Contains(write.Syntax.Span))
            {
                return true;
            }
        }

        foreach (var call in operations.OfType<IInvocationOperation>())
        {
            var name = call.TargetMethod.Name;
            if (Symbols.IsInterlocked(call.TargetMethod) && name is "CompareExchange" or "Exchange"
                && call.Arguments.Length > 0 && Symbols.ReferencedSymbol(call.Arguments[0].Value) is IFieldSymbol target && SymbolEqualityComparer.Default.Equals(target, field.OriginalDefinition))
            {
                return true;
            }

            if (AcquireMethods.Contains(name) && call.Syntax.Span.End <= check.Syntax.SpanStart)
            {
                return true;
            }
        }

        return false;
    }
}
