using System.Threading;

namespace Concurrency.Primitives.Internal;

/// <summary>A pooled object that can sit in a <see cref="FreeList"/>.</summary>
/// <typeparam name="T">The object's own type.</typeparam>
internal interface IFreeListNode<T>
    where T : class
{
    /// <summary>The next object in the list.</summary>
    T? NextFree { get; set; }
}

/// <summary>
/// A lock-free stack of objects handed back for reuse. Any thread pushes; the owner takes the whole chain at once
/// (<see cref="TakeAll"/>), so no node can leave and re-enter the list between a push's read and its swap: no ABA.
/// </summary>
internal static class FreeList
{
    /// <summary>Pushes <paramref name="node"/> (compare-and-swap).</summary>
    public static void Push<T>(ref T? head, T node)
        where T : class, IFreeListNode<T> => PushChain(ref head, node, node);

    /// <summary>Pushes a chain of nodes, <paramref name="first"/> through <paramref name="last"/> (one compare-and-swap).</summary>
    public static void PushChain<T>(ref T? head, T first, T last)
        where T : class, IFreeListNode<T>
    {
        var top = Volatile.Read(ref head);
        while (true)
        {
            last.NextFree = top;
            var seen = Interlocked.CompareExchange(ref head, first, top);
            if (ReferenceEquals(seen, top))
            {
                return;
            }

            top = seen;
        }
    }

    /// <summary>Takes every node pushed so far, as a chain linked through <see cref="IFreeListNode{T}.NextFree"/>.</summary>
    public static T? TakeAll<T>(ref T? head)
        where T : class => Interlocked.Exchange(ref head, null);
}
