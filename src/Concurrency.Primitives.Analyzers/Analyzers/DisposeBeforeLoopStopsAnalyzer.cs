using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Concurrency.Primitives.Analyzers;

/// <summary>
/// CP0004: in one method, a field is disposed or closed before a CancellationTokenSource is cancelled and a task field
/// (the loop) is awaited after that. The README's CP0004 section lists the exact conditions.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class DisposeBeforeLoopStopsAnalyzer : ConcurrencyAnalyzer
{
    /// <summary>Property of a reported diagnostic: the span start of the statement that awaits the loop.</summary>
    internal const string AwaitPositionProperty = "AwaitPosition";

    /// <summary>Creates the analyzer.</summary>
    public DisposeBeforeLoopStopsAnalyzer()
        : base(Descriptors.DisposeBeforeLoopStops)
    {
    }

    /// <inheritdoc/>
    private protected override void Register(AnalysisContext context)
    {
        context.RegisterOperationAction(AnalyzeMethod, OperationKind.MethodBody);
    }

    private static void AnalyzeMethod(OperationAnalysisContext context)
    {
        var invocations = Symbols.DescendantsInSameFunction(context.Operation).OfType<IInvocationOperation>().ToList();
        var cancels = invocations.Where(IsCancel).ToList();
        if (cancels.Count == 0)
        {
            return;
        }

        var loopWaits = Symbols.DescendantsInSameFunction(context.Operation)
            .Select(o => (Wait: o, Task: WaitedTask(o)))
            .Where(w => w.Task is not null)
            .ToList();
        if (loopWaits.Count == 0)
        {
            return;
        }

        foreach (var release in invocations)
        {
            if (Released(release) is not { } resource)
            {
                continue;
            }

            var cancel = cancels.FirstOrDefault(c => c.Syntax.SpanStart >= release.Syntax.Span.End);
            if (cancel is null)
            {
                continue;
            }

            var wait = loopWaits.FirstOrDefault(w => w.Wait.Syntax.SpanStart >= cancel.Syntax.Span.End && !SymbolEqualityComparer.Default.Equals(w.Task, resource));
            if (wait.Task is null)
            {
                continue;
            }

            var properties = ImmutableDictionary<string, string?>.Empty.Add(AwaitPositionProperty, wait.Wait.Syntax.SpanStart.ToString(System.Globalization.CultureInfo.InvariantCulture));
            context.ReportDiagnostic(Diagnostic.Create(
                Descriptors.DisposeBeforeLoopStops,
                (release.Parent is IConditionalAccessOperation conditional ? conditional.Syntax : release.Syntax).GetLocation(),
                properties,
                resource.Name,
                Symbols.ReferencedSymbol(cancel.Instance)?.Name ?? "the token source",
                wait.Task.Name));
        }
    }

    private static bool IsCancel(IInvocationOperation call)
        => call.TargetMethod.Name is "Cancel" or "CancelAsync" && Symbols.IsCancellationTokenSource(call.TargetMethod.ContainingType);

    /// <summary>The field a Dispose/DisposeAsync/Close/CloseAsync call releases (not a token source, not a task).</summary>
    private static ISymbol? Released(IInvocationOperation call)
    {
        if (call.TargetMethod.Name is not ("Dispose" or "DisposeAsync" or "Close" or "CloseAsync") || call.Arguments.Length > 0 || call.Instance is null)
        {
            return null;
        }

        var instance = Symbols.Strip(call.Instance);
        if (instance is IConditionalAccessInstanceOperation && call.Parent is IConditionalAccessOperation conditional)
        {
            instance = Symbols.Strip(conditional.Operation);
        }

        var symbol = Symbols.ReferencedSymbol(instance);
        return symbol is IFieldSymbol or IPropertySymbol && !Symbols.IsCancellationTokenSource(instance.Type) && !Symbols.IsTask(instance.Type?.OriginalDefinition) && !Symbols.IsTask(instance.Type?.BaseType)
            ? symbol
            : null;
    }

    /// <summary>The task field (or field of tasks) an operation waits for: await, Wait(), GetAwaiter().GetResult(), Task.WhenAll/WhenAny/WaitAll.</summary>
    private static ISymbol? WaitedTask(IOperation operation)
    {
        IOperation? waited = operation switch
        {
            IAwaitOperation awaited => awaited.Operation,
            IInvocationOperation { TargetMethod.Name: "Wait" or "GetResult" or "WaitAll" or "WaitAny" } call when call.Parent is not IAwaitOperation => call,
            _ => null,
        };
        return waited is null ? null : TaskField(waited);
    }

    private static ISymbol? TaskField(IOperation operation)
    {
        var current = Symbols.Strip(operation);
        if (current is IInvocationOperation call)
        {
            var name = call.TargetMethod.Name;
            if (name is "ConfigureAwait" or "WaitAsync" or "Wait" or "GetAwaiter" or "GetResult" && call.Instance is not null)
            {
                return TaskField(call.Instance);
            }

            if (name is "WhenAll" or "WhenAny" or "WaitAll" or "WaitAny" && call.TargetMethod.IsStatic)
            {
                return call.Arguments.SelectMany(a => a.Value is IArrayCreationOperation { Initializer: { } init } ? init.ElementValues : ImmutableArray.Create(a.Value))
                    .Select(TaskField).FirstOrDefault(s => s is not null);
            }

            return null;
        }

        var symbol = Symbols.ReferencedSymbol(current);
        var type = current.Type;
        var isTask = Symbols.IsTask(type?.OriginalDefinition) || Symbols.IsTask(type?.BaseType) || (type is IArrayTypeSymbol array && Symbols.IsTask(array.ElementType.OriginalDefinition));
        return symbol is IFieldSymbol or IPropertySymbol && isTask ? symbol : null;
    }
}
