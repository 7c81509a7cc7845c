using System.Collections.Immutable;
using System.Composition;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Editing;
using Microsoft.CodeAnalysis.Formatting;

namespace Concurrency.Primitives.Analyzers.CodeFixes;

/// <summary>
/// CP0001 fixes: move the raise out of the lambda to just before the statement that starts the work; and, for the
/// TaskTracker shape <c>Task.Run(async () =&gt; { t.Add(); try { … } finally { t.Done(); } })</c>, rewrite to
/// <c>t.Go(async closing =&gt; { … })</c>.
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(MoveCountBeforeSpawnCodeFix)), Shared]
public sealed class MoveCountBeforeSpawnCodeFix : CodeFixProvider
{
    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ImmutableArray.Create(Descriptors.CountRaisedInsideWork.Id);

    /// <inheritdoc/>
    public override FixAllProvider? GetFixAllProvider() => null;

    /// <inheritdoc/>
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        var model = await context.Document.GetSemanticModelAsync(context.CancellationToken).ConfigureAwait(false);
        if (root is null || model is null)
        {
            return;
        }

        var diagnostic = context.Diagnostics[0];
        if (root.FindNode(diagnostic.Location.SourceSpan, getInnermostNodeForTie: true) is not InvocationExpressionSyntax raise
            || raise.Parent is not ExpressionStatementSyntax raiseStatement
            || raiseStatement.Parent is not BlockSyntax { Parent: AnonymousFunctionExpressionSyntax lambda } lambdaBody
            || lambda.FirstAncestorOrSelf<StatementSyntax>(s => s.Parent is BlockSyntax && !lambda.Span.Contains(s.Span)) is not { } spawnStatement
            || UsesSymbolsOf(raiseStatement, lambda, model, context.CancellationToken))
        {
            return;
        }

        context.RegisterCodeFix(
            CodeAction.Create(
                "Raise the count before the work starts",
                ct => MoveBeforeAsync(context.Document, raiseStatement, spawnStatement, ct),
                equivalenceKey: "MoveBeforeSpawn"),
            diagnostic);

        if (diagnostic.Properties.TryGetValue("Spawn", out var spawn) && spawn == "Task.Run"
            && TrackerGoShape(raise, lambda, lambdaBody, model, context.CancellationToken) is { } shape)
        {
            context.RegisterCodeFix(
                CodeAction.Create(
                    "Use TaskTracker.Go (registers before the work starts)",
                    ct => RewriteToGoAsync(context.Document, shape, ct),
                    equivalenceKey: "TaskTrackerGo"),
                diagnostic);
        }
    }

    private static bool UsesSymbolsOf(SyntaxNode statement, SyntaxNode lambda, SemanticModel model, CancellationToken cancellationToken)
        => statement.DescendantNodes().OfType<IdentifierNameSyntax>().Any(name =>
            model.GetSymbolInfo(name, cancellationToken).Symbol is ILocalSymbol or IParameterSymbol && model.GetSymbolInfo(name, cancellationToken).Symbol!
                .DeclaringSyntaxReferences.Any(r => lambda.Span.Contains(r.Span)));

    private static async Task<Document> MoveBeforeAsync(Document document, StatementSyntax raise, StatementSyntax spawn, CancellationToken cancellationToken)
    {
        var editor = await DocumentEditor.CreateAsync(document, cancellationToken).ConfigureAwait(false);
        var moved = raise.WithLeadingTrivia(spawn.GetLeadingTrivia()).WithAdditionalAnnotations(Formatter.Annotation);
        editor.InsertBefore(spawn, moved);
        editor.RemoveNode(raise, SyntaxRemoveOptions.KeepNoTrivia);
        return editor.GetChangedDocument();
    }

    private sealed class GoShape
    {
        public GoShape(InvocationExpressionSyntax spawn, ExpressionSyntax tracker, BlockSyntax work, string parameter)
        {
            Spawn = spawn;
            Tracker = tracker;
            Work = work;
            Parameter = parameter;
        }

        public InvocationExpressionSyntax Spawn { get; }

        public ExpressionSyntax Tracker { get; }

        public BlockSyntax Work { get; }

        public string Parameter { get; }
    }

    /// <summary>
    /// <c>_ = Task.Run(async () =&gt; { t.Add(); try { … } finally { t.Done(); } })</c> or the same as a statement, with
    /// a Func&lt;Task&gt; lambda: Go's task (registered and started) may replace one nobody reads.
    /// </summary>
    private static GoShape? TrackerGoShape(InvocationExpressionSyntax raise, AnonymousFunctionExpressionSyntax lambda, BlockSyntax body, SemanticModel model, CancellationToken cancellationToken)
    {
        if (lambda is not ParenthesizedLambdaExpressionSyntax { ParameterList.Parameters.Count: 0 } || lambda.AsyncKeyword.IsKind(SyntaxKind.None)
            || lambda.Parent is not ArgumentSyntax { Parent: ArgumentListSyntax { Arguments.Count: 1, Parent: InvocationExpressionSyntax spawn } }
            || !(spawn.Parent is ExpressionStatementSyntax || spawn.Parent is AssignmentExpressionSyntax { Left: IdentifierNameSyntax { Identifier.ValueText: "_" }, Parent: ExpressionStatementSyntax })
            || raise.Expression is not MemberAccessExpressionSyntax { Name.Identifier.ValueText: "Add" } add || raise.ArgumentList.Arguments.Count != 0
            || body.Statements.Count != 2 || body.Statements[1] is not TryStatementSyntax { Catches.Count: 0, Finally.Block.Statements: { Count: 1 } finallyStatements } attempt
            || finallyStatements[0] is not ExpressionStatementSyntax { Expression: InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax { Name.Identifier.ValueText: "Done" } done, ArgumentList.Arguments.Count: 0 } }
            || !SyntaxFactory.AreEquivalent(done.Expression, add.Expression)
            || model.GetTypeInfo(add.Expression, cancellationToken).Type is not { Name: "TaskTracker" }
            || model.GetSymbolInfo(lambda, cancellationToken).Symbol is not IMethodSymbol { ReturnType: INamedTypeSymbol { Arity: 0, Name: "Task" } })
        {
            return null;
        }

        var parameter = "closing";
        for (var i = 2; Taken(parameter, lambda, model); i++)
        {
            parameter = "closing" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return new GoShape(spawn, add.Expression, attempt.Block, parameter);
    }

    private static bool Taken(string name, SyntaxNode lambda, SemanticModel model)
        => !model.LookupSymbols(lambda.SpanStart, name: name).IsEmpty
           || lambda.DescendantTokens().Any(t => t.IsKind(SyntaxKind.IdentifierToken) && t.ValueText == name);

    private static async Task<Document> RewriteToGoAsync(Document document, GoShape shape, CancellationToken cancellationToken)
    {
        var root = await document.GetSyntaxRootAsync(cancellationToken).ConfigureAwait(false);
        var lambda = SyntaxFactory.SimpleLambdaExpression(SyntaxFactory.Parameter(SyntaxFactory.Identifier(shape.Parameter)))
            .WithAsyncKeyword(SyntaxFactory.Token(SyntaxKind.AsyncKeyword).WithTrailingTrivia(SyntaxFactory.Space))
            .WithBlock(shape.Work.WithoutTrailingTrivia())
            .WithExpressionBody(null);
        var go = SyntaxFactory.InvocationExpression(
                SyntaxFactory.MemberAccessExpression(SyntaxKind.SimpleMemberAccessExpression, shape.Tracker.WithoutTrivia(), SyntaxFactory.IdentifierName("Go")),
                SyntaxFactory.ArgumentList(SyntaxFactory.SingletonSeparatedList(SyntaxFactory.Argument(lambda))))
            .WithTriviaFrom(shape.Spawn)
            .WithAdditionalAnnotations(Formatter.Annotation);
        return document.WithSyntaxRoot(root!.ReplaceNode(shape.Spawn, go));
    }
}
