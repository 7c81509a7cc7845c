using System.Collections.Immutable;
using System.Composition;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Simplification;

namespace Concurrency.Primitives.Analyzers.CodeFixes;

/// <summary>CP0002 fix: add TaskCreationOptions.RunContinuationsAsynchronously to the constructor call, or-ed with options already given.</summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(RunContinuationsAsynchronouslyCodeFix)), Shared]
public sealed class RunContinuationsAsynchronouslyCodeFix : CodeFixProvider
{
    /// <inheritdoc/>
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ImmutableArray.Create(Descriptors.InlineContinuations.Id);

    /// <inheritdoc/>
    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    /// <inheritdoc/>
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        var model = await context.Document.GetSemanticModelAsync(context.CancellationToken).ConfigureAwait(false);
        if (root?.FindNode(context.Diagnostics[0].Location.SourceSpan, getInnermostNodeForTie: true) is not BaseObjectCreationExpressionSyntax creation || model is null)
        {
            return;
        }

        var arguments = creation.ArgumentList?.Arguments ?? default;
        ArgumentSyntax? optionsArgument = null;
        foreach (var argument in arguments)
        {
            if (model.GetTypeInfo(argument.Expression, context.CancellationToken).ConvertedType?.Name == "TaskCreationOptions")
            {
                optionsArgument = argument;
            }
        }

        if (optionsArgument is null && arguments.Count > 1)
        {
            return;
        }

        context.RegisterCodeFix(
            CodeAction.Create(
                "Create it with TaskCreationOptions.RunContinuationsAsynchronously",
                _ => Task.FromResult(context.Document.WithSyntaxRoot(root.ReplaceNode(creation, WithFlag(creation, optionsArgument)))),
                equivalenceKey: "RunContinuationsAsynchronously"),
            context.Diagnostics);
    }

    private static BaseObjectCreationExpressionSyntax WithFlag(BaseObjectCreationExpressionSyntax creation, ArgumentSyntax? options)
    {
        var flag = SyntaxFactory.ParseExpression("global::System.Threading.Tasks.TaskCreationOptions.RunContinuationsAsynchronously")
            .WithAdditionalAnnotations(Simplifier.Annotation);
        var list = creation.ArgumentList ?? SyntaxFactory.ArgumentList();
        if (options is not null)
        {
            var combined = SyntaxFactory.BinaryExpression(SyntaxKind.BitwiseOrExpression, options.Expression.WithoutTrivia(), flag).WithTriviaFrom(options.Expression);
            return creation.WithArgumentList(list.ReplaceNode(options, options.WithExpression(combined)));
        }

        // No options yet: TaskCompletionSource(options) or, after a state argument, TaskCompletionSource(state, options).
        return creation.WithArgumentList(list.AddArguments(SyntaxFactory.Argument(flag)));
    }
}
