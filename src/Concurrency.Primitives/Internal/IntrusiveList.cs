using System.Diagnostics;

namespace Concurrency.Primitives.Internal;

/// <summary>The two links a node carries to sit in one <see cref="IntrusiveList{T, TLinks}"/>.</summary>
/// <typeparam name="T">The node type.</typeparam>
internal struct ListLinks<T>
    where T : class
{
    public T? Previous;
    public T? Next;
}

/// <summary>Finds a node's links; implemented by an empty struct so that the list's code is specialised and inlined.</summary>
/// <typeparam name="T">The node type.</typeparam>
internal interface ILinksOf<T>
    where T : class
{
    ref ListLinks<T> Of(T node);
}

/// <summary>
/// A doubly linked list threaded through its nodes: O(1) append and removal of any node, no allocation.
/// Not thread-safe: the owner guards it (a lock, or a single owning loop). A node sits in at most one list.
/// </summary>
/// <typeparam name="T">The node type.</typeparam>
/// <typeparam name="TLinks">Finds a node's links.</typeparam>
internal struct IntrusiveList<T, TLinks>
    where T : class
    where TLinks : struct, ILinksOf<T>
{
    private T? _head;
    private T? _tail;

    /// <summary>The oldest node, or <see langword="null"/> when the list is empty.</summary>
    public readonly T? First => _head;

    /// <summary>The node after <paramref name="node"/>, for walking from <see cref="First"/>.</summary>
    public static T? NextOf(T node) => default(TLinks).Of(node).Next;

    public void AddLast(T node)
    {
        ref var links = ref default(TLinks).Of(node);
        Debug.Assert(links.Previous is null && links.Next is null && !ReferenceEquals(_head, node), "A node sits in one list at a time.");
        links.Previous = _tail;
        links.Next = null;
        if (_tail is null)
        {
            _head = node;
        }
        else
        {
            default(TLinks).Of(_tail).Next = node;
        }

        _tail = node;
    }

    public void Remove(T node)
    {
        ref var links = ref default(TLinks).Of(node);
        if (links.Previous is null)
        {
            Debug.Assert(ReferenceEquals(_head, node), "The node is in this list.");
            _head = links.Next;
        }
        else
        {
            default(TLinks).Of(links.Previous).Next = links.Next;
        }

        if (links.Next is null)
        {
            _tail = links.Previous;
        }
        else
        {
            default(TLinks).Of(links.Next).Previous = links.Previous;
        }

        links.Previous = null;
        links.Next = null;
    }
}
