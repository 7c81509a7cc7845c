using System.Threading;

namespace Concurrency.Primitives.Internal;

/// <summary>
/// Marks the execution context of a batcher's dispatch, so that a submit from inside it (the same-pool recursion
/// that can deadlock every dispatch slot) is recognised even after the dispatch has awaited and moved threads.
/// </summary>
internal static class DispatchScope
{
    public static readonly AsyncLocal<object?> Owner = new();
}
