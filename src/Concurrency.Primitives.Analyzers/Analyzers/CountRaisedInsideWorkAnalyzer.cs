using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Concurrency.Primitives.Analyzers;

/// <summary>
/// CP0001, go vet's waitgroup check for .NET: a counter raised from inside the work it counts, where a wait outside
/// can see zero before the raise runs. The README's CP0001 section lists the exact conditions.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class CountRaisedInsideWorkAnalyzer : ConcurrencyAnalyzer
{
    /// <summary>Property of a reported diagnostic: the spawn is a plain <c>Task.Run</c> whose result is discarded.</summary>
    internal const string SpawnKindProperty = "Spawn";

    /// <summary>Creates the analyzer.</summary>
    public CountRaisedInsideWorkAnalyzer()
        : base(Descriptors.CountRaisedInsideWork)
    {
    }

    /// <inheritdoc/>
    private protected override void Register(AnalysisContext context)
    {
        context.RegisterCompilationStartAction(start =>
        {
            // An async method called twice without await would report the same raise twice.
            var reported = new ConcurrentDictionary<Location, bool>();
            start.RegisterOperationAction(c => AnalyzeSpawn(c, reported), OperationKind.Invocation);
        });
    }

    private static void AnalyzeSpawn(OperationAnalysisContext context, ConcurrentDictionary<Location, bool> reported)
    {
        var spawn = (IInvocationOperation)context.Operation;
        var (work, spawnName, afterFirstAwaitOnly) = SpawnedWork(spawn);
        if (work is null || IsAwaited(spawn))
        {
            return;
        }

        foreach (var operation in Symbols.DescendantsInSameFunction(work))
        {
            if (operation is not IInvocationOperation raise || Counter(raise) is not { } counter)
            {
                continue;
            }

            if (!DeclaredOutside(counter.Symbol, work.Syntax) || RegistersChildNext(raise)
                || (afterFirstAwaitOnly && !FollowsAwait(raise, work)) || !IsWaitedOn(counter, raise.SemanticModel, work.Syntax, context.CancellationToken))
            {
                continue;
            }

            var location = raise.Syntax.GetLocation();
            if (!afterFirstAwaitOnly || reported.TryAdd(location, true))
            {
                var properties = ImmutableDictionary<string, string?>.Empty.Add(SpawnKindProperty, spawnName);
                context.ReportDiagnostic(Diagnostic.Create(Descriptors.CountRaisedInsideWork, location, properties, counter.Display, spawnName));
            }
        }
    }

    /// <summary>The body of the work a call starts, and how to name the call; null when it starts none we can see.</summary>
    private static (IOperation? Work, string Name, bool AfterFirstAwaitOnly) SpawnedWork(IInvocationOperation spawn)
    {
        var method = spawn.TargetMethod;
        var type = method.ContainingType;
        if ((method.Name == "Run" && Symbols.Is(type, "System.Threading.Tasks", "Task"))
            || (method.Name == "StartNew" && (Symbols.Is(type, "System.Threading.Tasks", "TaskFactory") || Symbols.IsGeneric(type, "System.Threading.Tasks", "TaskFactory", 1)))
            || (method.Name is "QueueUserWorkItem" or "UnsafeQueueUserWorkItem" && Symbols.Is(type, "System.Threading", "ThreadPool")))
        {
            var name = type.Name == "ThreadPool" ? "ThreadPool." + method.Name : method.Name == "Run" ? "Task.Run" : "StartNew";
            return (spawn.Arguments.Length > 0 ? DelegateBody(spawn.Arguments[0].Value) : null, name, false);
        }

        if (method.Name == "Start" && Symbols.Is(type, "System.Threading", "Thread") && spawn.Instance is not null)
        {
            var creation = Symbols.Strip(spawn.Instance) as IObjectCreationOperation ?? ThreadCreation(spawn);
            return (creation is { Arguments.Length: > 0 } ? DelegateBody(creation.Arguments[0].Value) : null, "Thread.Start", false);
        }

        // An async method called without await runs its first part synchronously, in the caller; only what comes
        // after its first await runs as separate work.
        if (method.IsAsync && method.MethodKind is MethodKind.Ordinary or MethodKind.LocalFunction && IsDiscarded(spawn))
        {
            return (MethodBody(spawn, method), "the un-awaited call to " + method.Name, true);
        }

        return (null, string.Empty, false);
    }

    private static IObjectCreationOperation? ThreadCreation(IInvocationOperation start)
    {
        if (Symbols.Strip(start.Instance!) is not ILocalReferenceOperation local)
        {
            return null;
        }

        return Symbols.DescendantsInSameFunction(Symbols.Root(start))
            .OfType<IVariableDeclaratorOperation>()
            .Where(d => SymbolEqualityComparer.Default.Equals(d.Symbol, local.Local) && d.Initializer is not null)
            .Select(d => Symbols.Strip(d.Initializer!.Value) as IObjectCreationOperation)
            .FirstOrDefault(c => c is not null && Symbols.Is(c.Type, "System.Threading", "Thread"));
    }

    private static IOperation? DelegateBody(IOperation argument)
    {
        var value = Symbols.Strip(argument);
        if (value is IDelegateCreationOperation creation)
        {
            value = creation.Target;
        }

        return value switch
        {
            IAnonymousFunctionOperation function => function.Body,
            IMethodReferenceOperation reference when reference.Method.MethodKind == MethodKind.LocalFunction => LocalFunctionBody(reference, reference.Method),
            _ => null,
        };
    }

    private static IOperation? MethodBody(IOperation site, IMethodSymbol method)
    {
        if (method.MethodKind == MethodKind.LocalFunction)
        {
            return LocalFunctionBody(site, method);
        }

        // Only a method declared in the same file: its operations come from the same semantic model.
        var syntax = method.DeclaringSyntaxReferences.Select(r => r.GetSyntax()).OfType<MethodDeclarationSyntax>()
            .FirstOrDefault(s => s.SyntaxTree == site.Syntax.SyntaxTree);
        return syntax is null ? null : site.SemanticModel?.GetOperation(syntax) is IMethodBodyOperation body ? (IOperation?)body.BlockBody ?? body.ExpressionBody : null;
    }

    private static IOperation? LocalFunctionBody(IOperation site, IMethodSymbol method)
    {
        for (var current = site.Parent; current is not null; current = current.Parent)
        {
            if (current is IBlockOperation block)
            {
                var found = block.Operations.OfType<ILocalFunctionOperation>().FirstOrDefault(f => SymbolEqualityComparer.Default.Equals(f.Symbol, method));
                if (found is not null)
                {
                    return found.Body;
                }
            }
        }

        return null;
    }

    private static bool IsAwaited(IOperation spawn)
    {
        var current = spawn;
        while (current.Parent is IConversionOperation or IParenthesizedOperation
               || (current.Parent is IInvocationOperation { TargetMethod.Name: "ConfigureAwait" } configure && ReferenceEquals(configure.Instance, current)))
        {
            current = current.Parent;
        }

        return current.Parent is IAwaitOperation or IReturnOperation;
    }

    private static bool IsDiscarded(IOperation call)
    {
        var parent = call.Parent;
        while (parent is IConversionOperation)
        {
            parent = parent.Parent;
        }

        return parent is IExpressionStatementOperation || (parent is ISimpleAssignmentOperation assignment && assignment.Target is IDiscardOperation);
    }

    private static bool FollowsAwait(IOperation raise, IOperation work)
        => Symbols.DescendantsInSameFunction(work).OfType<IAwaitOperation>().Any(a => a.Syntax.Span.End <= raise.Syntax.SpanStart);

    /// <summary>The Go pattern inside a parent's work: raise, then start the child, in the same block (the parent still holds its count).</summary>
    private static bool RegistersChildNext(IOperation raise)
    {
        if (raise.Parent is not IExpressionStatementOperation statement || statement.Parent is not IBlockOperation block)
        {
            return false;
        }

        var index = block.Operations.IndexOf(statement);
        return block.Operations.Skip(index + 1).Any(next =>
            next.DescendantsAndSelf().Any(o => o is IDelegateCreationOperation
                || (o is IInvocationOperation call && Symbols.IsTask(call.Type?.OriginalDefinition) && IsDiscarded(call))));
    }

    private static bool DeclaredOutside(ISymbol symbol, SyntaxNode work)
        => symbol is IFieldSymbol or IPropertySymbol
           || symbol.DeclaringSyntaxReferences.All(r => r.SyntaxTree != work.SyntaxTree || !work.Span.Contains(r.Span));

    private readonly struct CounterInfo
    {
        public CounterInfo(ISymbol symbol, string display, bool isInterlocked)
        {
            Symbol = symbol;
            Display = display;
            IsInterlocked = isInterlocked;
        }

        public ISymbol Symbol { get; }

        public string Display { get; }

        public bool IsInterlocked { get; }
    }

    /// <summary>The counter a call raises: Interlocked.Increment/Add, CountdownEvent.(Try)AddCount, TaskTracker.Add.</summary>
    private static CounterInfo? Counter(IInvocationOperation call)
    {
        var method = call.TargetMethod;
        if (Symbols.IsInterlocked(method) && method.Name is "Increment" or "Add" && call.Arguments.Length > 0)
        {
            if (method.Name == "Add" && (call.Arguments.Length < 2 || call.Arguments[1].Value.ConstantValue is not { HasValue: true, Value: int or long } delta || System.Convert.ToInt64(delta.Value, System.Globalization.CultureInfo.InvariantCulture) <= 0))
            {
                return null;
            }

            // A raise whose result is read (`if (Interlocked.Increment(ref n) == 1)`) is a gate or a ticket, not a WaitGroup's Add.
            if (call.Parent is not IExpressionStatementOperation)
            {
                return null;
            }

            var symbol = Symbols.ReferencedSymbol(call.Arguments[0].Value);
            return symbol is IFieldSymbol or ILocalSymbol ? new CounterInfo(symbol, "Interlocked." + method.Name, isInterlocked: true) : null;
        }

        var type = method.ContainingType;
        var isCountdown = (method.Name is "AddCount" or "TryAddCount")
            && (Symbols.Is(type, "System.Threading", "CountdownEvent") || Symbols.Is(type, "Nito.AsyncEx", "AsyncCountdownEvent") || Symbols.Is(type, "DotNext.Threading", "AsyncCountdownEvent"));
        var isTracker = method.Name == "Add" && Symbols.IsTaskTracker(type);
        if ((isCountdown || isTracker) && Symbols.ReferencedSymbol(call.Instance) is { } receiver and (IFieldSymbol or ILocalSymbol or IPropertySymbol or IParameterSymbol))
        {
            return new CounterInfo(receiver, type.Name + "." + method.Name, isInterlocked: false);
        }

        return null;
    }

    /// <summary>
    /// Whether some code waits on the counter: an Interlocked counter tested against a constant anywhere in its scope
    /// (directly, or through the result of Interlocked/Volatile: the Done of a hand-rolled WaitGroup), a countdown
    /// event's Wait/WaitAsync/WaitHandle, any TaskTracker.
    /// </summary>
    private static bool IsWaitedOn(CounterInfo counter, SemanticModel? model, SyntaxNode work, System.Threading.CancellationToken cancellationToken)
    {
        if (model is null)
        {
            return false;
        }

        // A TaskTracker exists to be waited on (WaitAsync, CloseAsync, Completion).
        if (Symbols.IsTaskTracker(counter.Symbol switch { IFieldSymbol f => f.Type, ILocalSymbol l => l.Type, IPropertySymbol p => p.Type, IParameterSymbol p => p.Type, _ => null }))
        {
            return true;
        }

        foreach (var scope in Scopes(counter.Symbol, work))
        {
            foreach (var name in scope.DescendantNodes().OfType<IdentifierNameSyntax>())
            {
                if (name.Identifier.ValueText != counter.Symbol.Name
                    || !SymbolEqualityComparer.Default.Equals(model.GetSymbolInfo(name, cancellationToken).Symbol?.OriginalDefinition, counter.Symbol.OriginalDefinition))
                {
                    continue;
                }

                if (counter.IsInterlocked ? IsTestedAgainstConstant(name, model, cancellationToken) : IsWaitOn(name))
                {
                    return true;
                }
            }
        }

        return false;
    }

    private static System.Collections.Generic.IEnumerable<SyntaxNode> Scopes(ISymbol symbol, SyntaxNode work)
    {
        if (symbol is ILocalSymbol or IParameterSymbol)
        {
            var member = work.Ancestors().FirstOrDefault(a => a is BaseMethodDeclarationSyntax or AccessorDeclarationSyntax or PropertyDeclarationSyntax or GlobalStatementSyntax or FieldDeclarationSyntax);
            return member is null ? Enumerable.Empty<SyntaxNode>() : new[] { member is GlobalStatementSyntax ? member.Parent! : member };
        }

        return symbol.ContainingType.DeclaringSyntaxReferences.Where(r => r.SyntaxTree == work.SyntaxTree).Select(r => r.GetSyntax());
    }

    private static bool IsTestedAgainstConstant(ExpressionSyntax name, SemanticModel model, System.Threading.CancellationToken cancellationToken)
    {
        ExpressionSyntax tested = name;
        if (tested.Parent is MemberAccessExpressionSyntax access && access.Name == tested)
        {
            tested = access;
        }

        if (tested.Parent is ArgumentSyntax { Parent: ArgumentListSyntax { Parent: InvocationExpressionSyntax invocation } }
            && model.GetSymbolInfo(invocation, cancellationToken).Symbol is IMethodSymbol method
            && (Symbols.IsInterlocked(method) || (Symbols.IsVolatile(method) && method.Name == "Read")))
        {
            tested = invocation;
        }

        while (tested.Parent is ParenthesizedExpressionSyntax parenthesized)
        {
            tested = parenthesized;
        }

        switch (tested.Parent)
        {
            case BinaryExpressionSyntax binary when binary.Kind() is SyntaxKind.EqualsExpression or SyntaxKind.NotEqualsExpression
                or SyntaxKind.LessThanExpression or SyntaxKind.LessThanOrEqualExpression or SyntaxKind.GreaterThanExpression or SyntaxKind.GreaterThanOrEqualExpression:
                var other = binary.Left == tested ? binary.Right : binary.Left;
                return model.GetConstantValue(other, cancellationToken).HasValue;
            case IsPatternExpressionSyntax pattern:
                return pattern.Pattern is ConstantPatternSyntax or RelationalPatternSyntax;
            default:
                return false;
        }
    }

    private static bool IsWaitOn(ExpressionSyntax name)
    {
        ExpressionSyntax receiver = name;
        if (receiver.Parent is MemberAccessExpressionSyntax self && self.Name == receiver)
        {
            receiver = self;
        }

        return receiver.Parent is MemberAccessExpressionSyntax access && access.Expression == receiver
            && access.Name.Identifier.ValueText is "Wait" or "WaitAsync" or "WaitHandle";
    }
}
