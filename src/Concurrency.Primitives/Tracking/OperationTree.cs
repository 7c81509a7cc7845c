using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace Concurrency.Primitives;

/// <summary>
/// Writes outstanding operations as a tree by parent: each child indented under the operation that registered it, so a
/// reader sees which parent waits on which child. A child whose parent has already finished is written at the top level
/// (its line still says whose child it was).
/// </summary>
internal static class OperationTree
{
    /// <summary>Appends one line per operation (and its registration site, when captured), at most <paramref name="maxListed"/> operations.</summary>
    public static void Append(StringBuilder text, IReadOnlyList<TrackedOperationInfo> operations, int maxListed, string indent)
    {
        var present = new HashSet<long>();
        var children = new Dictionary<long, List<TrackedOperationInfo>>();
        foreach (var operation in operations)
        {
            present.Add(operation.Id);
        }

        var roots = new List<TrackedOperationInfo>();
        foreach (var operation in operations)
        {
            if (operation.ParentId is { } parent && present.Contains(parent))
            {
                if (!children.TryGetValue(parent, out var siblings))
                {
                    children.Add(parent, siblings = new List<TrackedOperationInfo>());
                }

                siblings.Add(operation);
            }
            else
            {
                roots.Add(operation);
            }
        }

        // Depth first, oldest sibling first, without recursion (a chain of children can be long).
        var pending = new Stack<(TrackedOperationInfo Operation, int Depth)>();
        for (var i = roots.Count - 1; i >= 0; i--)
        {
            pending.Push((roots[i], 0));
        }

        var listed = 0;
        while (pending.Count > 0 && listed < maxListed)
        {
            var (operation, depth) = pending.Pop();
            var lineIndent = indent + new string(' ', 2 * depth);
            text.AppendLine().Append(lineIndent).Append(operation);
            if (operation.RegistrationStackTrace is { } stack)
            {
                text.AppendLine().Append(lineIndent).Append("  registered at:").AppendLine().Append(stack);
            }

            listed++;
            if (children.TryGetValue(operation.Id, out var own))
            {
                for (var i = own.Count - 1; i >= 0; i--)
                {
                    pending.Push((own[i], depth + 1));
                }
            }
        }

        if (operations.Count > listed)
        {
            text.AppendLine().Append(indent).AppendFormat(CultureInfo.InvariantCulture, "... and {0} more", operations.Count - listed);
        }
    }
}
