using System.Collections.Immutable;
using System.Composition;
using System.Globalization;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Formatting;

namespace Concurrency.Primitives.Analyzers.CodeFixes;

/// <summary>CP0004 fix: move the release to just after the statement that awaits the loop (cancel → await → dispose).</summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(CancelAwaitDisposeCodeFix)), Shared]
public sealed class CancelAwaitDisposeCodeFix : CodeFixProvider
{
    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ImmutableArray.Create(Descriptors.DisposeBeforeLoopStops.Id);

    /// <inheritdoc/>
    public override FixAllProvider? GetFixAllProvider() => null;

    /// <inheritdoc/>
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        var diagnostic = context.Diagnostics[0];
        if (root is null
            || !diagnostic.Properties.TryGetValue(DisposeBeforeLoopStopsAnalyzer.AwaitPositionProperty, out var position)
            || !int.TryParse(position, NumberStyles.Integer, CultureInfo.InvariantCulture, out var awaitStart))
        {
            return;
        }

        var release = root.FindNode(diagnostic.Location.SourceSpan, getInnermostNodeForTie: true).FirstAncestorOrSelf<StatementSyntax>();
        var wait = root.FindToken(awaitStart).Parent?.FirstAncestorOrSelf<StatementSyntax>(s => s.Parent == release?.Parent);
        if (release is not ExpressionStatementSyntax || release.Parent is not BlockSyntax || wait is null)
        {
            return;
        }

        context.RegisterCodeFix(
            CodeAction.Create(
                "Release it after the loop is cancelled and awaited",
                _ => Task.FromResult(context.Document.WithSyntaxRoot(Move(root, release, wait))),
                equivalenceKey: "CancelAwaitDispose"),
            diagnostic);
    }

    private static SyntaxNode Move(SyntaxNode root, StatementSyntax release, StatementSyntax wait)
    {
        var tracked = root.TrackNodes(release, wait);
        var moved = release.WithLeadingTrivia(wait.GetLeadingTrivia().Where(t => !t.IsKind(Microsoft.CodeAnalysis.CSharp.SyntaxKind.SingleLineCommentTrivia))).WithAdditionalAnnotations(Formatter.Annotation);
        tracked = tracked.InsertNodesAfter(tracked.GetCurrentNode(wait)!, new[] { moved });
        return tracked.RemoveNode(tracked.GetCurrentNode(release)!, SyntaxRemoveOptions.KeepNoTrivia)!;
    }
}
