using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace Concurrency.Primitives.Analyzers;

/// <summary>Recognises the types and members the rules look for, by metadata name: the analyzers reference no library.</summary>
internal static class Symbols
{
    private static readonly HashSet<string> CompletionMethods = new(System.StringComparer.Ordinal)
    {
        "SetResult", "TrySetResult", "SetException", "TrySetException", "SetCanceled", "TrySetCanceled",
    };

    public static bool Is(ITypeSymbol? type, string ns, string name)
        => type is INamedTypeSymbol named && named.Name == name && named.ContainingNamespace?.ToDisplayString() == ns;

    public static bool IsGeneric(ITypeSymbol? type, string ns, string name, int arity)
        => type is INamedTypeSymbol named && named.Arity == arity && Is(named.OriginalDefinition, ns, name);

    public static bool IsTaskCompletionSource(ITypeSymbol? type)
        => Is(type, "System.Threading.Tasks", "TaskCompletionSource");

    public static bool IsTask(ITypeSymbol? type)
        => Is(type, "System.Threading.Tasks", "Task") || Is(type, "System.Threading.Tasks", "ValueTask");

    public static bool IsCancellationTokenSource(ITypeSymbol? type)
        => Is(type, "System.Threading", "CancellationTokenSource");

    public static bool IsInterlocked(IMethodSymbol method) => Is(method.ContainingType, "System.Threading", "Interlocked");

    public static bool IsVolatile(IMethodSymbol method) => Is(method.ContainingType, "System.Threading", "Volatile");

    public static bool IsBatcher(ITypeSymbol? type) => IsGeneric(type, "Concurrency.Primitives", "Batcher", 2);

    public static bool IsTaskTracker(ITypeSymbol? type) => Is(type, "Concurrency.Primitives", "TaskTracker");

    /// <summary>SetResult, TrySetException, … called on a TaskCompletionSource.</summary>
    public static bool IsCompletion(IInvocationOperation invocation)
        => CompletionMethods.Contains(invocation.TargetMethod.Name) && IsTaskCompletionSource(invocation.TargetMethod.ContainingType);

    /// <summary>A TaskCompletionSource, or a type with a non-private field or property that holds one (a tuple, an item record).</summary>
    public static bool IsOrCarriesCompletionSource(ITypeSymbol? type)
    {
        if (type is null || IsTaskCompletionSource(type))
        {
            return type is not null;
        }

        if (type.SpecialType == SpecialType.System_String || type is not INamedTypeSymbol named || named.TypeKind is TypeKind.Enum or TypeKind.Interface or TypeKind.Delegate)
        {
            return false;
        }

        // A member the type keeps to itself (a service's own private signal) does not make it an item that carries a
        // waiter: an item hands its completion source out to whoever answers it.
        return named.GetMembers().Any(member => !member.IsStatic && member.DeclaredAccessibility != Accessibility.Private && member switch
        {
            IFieldSymbol field => IsTaskCompletionSource(field.Type),
            IPropertySymbol property => IsTaskCompletionSource(property.Type),
            _ => false,
        });
    }

    /// <summary>The element type of an array or an <c>IEnumerable&lt;T&gt;</c>, or null.</summary>
    public static ITypeSymbol? ElementType(ITypeSymbol? type)
    {
        if (type is IArrayTypeSymbol array)
        {
            return array.ElementType;
        }

        if (type is not INamedTypeSymbol named || type.SpecialType == SpecialType.System_String)
        {
            return null;
        }

        if (IsGeneric(named, "System.Collections.Generic", "IEnumerable", 1))
        {
            return named.TypeArguments[0];
        }

        return named.AllInterfaces.FirstOrDefault(i => IsGeneric(i, "System.Collections.Generic", "IEnumerable", 1))?.TypeArguments[0];
    }

    /// <summary>Strips conversions and parentheses.</summary>
    public static IOperation Strip(IOperation operation)
    {
        while (true)
        {
            switch (operation)
            {
                case IConversionOperation conversion:
                    operation = conversion.Operand;
                    break;
                case IParenthesizedOperation parenthesized:
                    operation = parenthesized.Operand;
                    break;
                default:
                    return operation;
            }
        }
    }

    /// <summary>The field, local, parameter or property an expression names (through <c>this.</c>), or null.</summary>
    public static ISymbol? ReferencedSymbol(IOperation? operation)
    {
        if (operation is null)
        {
            return null;
        }

        return Strip(operation) switch
        {
            ILocalReferenceOperation local => local.Local,
            IParameterReferenceOperation parameter => parameter.Parameter,
            IFieldReferenceOperation field when field.Instance is null or IInstanceReferenceOperation => field.Field.OriginalDefinition,
            IPropertyReferenceOperation property when property.Arguments.IsEmpty && property.Instance is null or IInstanceReferenceOperation => property.Property.OriginalDefinition,
            _ => null,
        };
    }

    /// <summary>The storage a created object is put into: the local it initialises or the field/property/local it is assigned to.</summary>
    public static ISymbol? AssignedTo(IOperation creation)
    {
        var parent = creation.Parent;
        while (parent is IConversionOperation or IParenthesizedOperation)
        {
            parent = parent.Parent;
        }

        return parent switch
        {
            IVariableInitializerOperation { Parent: IVariableDeclaratorOperation declarator } => declarator.Symbol,
            IFieldInitializerOperation fieldInitializer when fieldInitializer.InitializedFields.Length == 1 => fieldInitializer.InitializedFields[0],
            IPropertyInitializerOperation propertyInitializer when propertyInitializer.InitializedProperties.Length == 1 => propertyInitializer.InitializedProperties[0],
            ISimpleAssignmentOperation assignment => ReferencedSymbol(assignment.Target),
            _ => null,
        };
    }

    /// <summary>The operations that contain <paramref name="operation"/>, innermost first, up to the lambda, local function or member it is in.</summary>
    public static IEnumerable<IOperation> AncestorsInSameFunction(IOperation operation)
    {
        for (var current = operation.Parent; current is not null && current is not IAnonymousFunctionOperation and not ILocalFunctionOperation; current = current.Parent)
        {
            yield return current;
        }
    }

    /// <summary>Every operation below <paramref name="root"/>, in document order, without entering nested lambdas or local functions.</summary>
    public static IEnumerable<IOperation> DescendantsInSameFunction(IOperation root)
    {
        var stack = new Stack<IOperation>();
        stack.Push(root);
        while (stack.Count > 0)
        {
            var current = stack.Pop();
            if (!ReferenceEquals(current, root))
            {
                yield return current;
                if (current is IAnonymousFunctionOperation or ILocalFunctionOperation)
                {
                    continue;
                }
            }

            var children = current.ChildOperations.ToList();
            for (var i = children.Count - 1; i >= 0; i--)
            {
                stack.Push(children[i]);
            }
        }
    }

    /// <summary>The root operation of the method, accessor, lambda-free body that contains <paramref name="operation"/>.</summary>
    public static IOperation Root(IOperation operation)
    {
        var current = operation;
        while (current.Parent is not null)
        {
            current = current.Parent;
        }

        return current;
    }
}
