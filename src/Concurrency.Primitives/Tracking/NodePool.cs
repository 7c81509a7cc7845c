using System.Diagnostics;
using System.Threading;

namespace Concurrency.Primitives;

/// <summary>
/// The free <see cref="TrackedNode"/>s of one tracker, guarded by the tracker's registry lock (so taking or
/// returning a node costs no synchronisation of its own), backed by a process-wide reservoir. A tracker whose
/// pool runs dry takes the whole reservoir in one exchange; a completed tracker hands its pool back in one
/// compare-and-swap. Short-lived trackers (one per batch of work) therefore reuse the nodes of earlier ones.
/// Swapping whole chains, never single nodes, is what keeps this free of the ABA problem.
/// </summary>
internal struct NodePool
{
    private const int MaxPooled = 1024;

    private static TrackedNode? s_reservoir;

    private TrackedNode? _free;
    private int _count;

    /// <summary>Takes a node; the caller holds the owner's registry lock.</summary>
    public TrackedNode Take()
    {
        if (_free is null)
        {
            _free = Interlocked.Exchange(ref s_reservoir, null);
            _count = _free?.ChainLength ?? 0;
        }

        if (_free is { } node)
        {
            _free = node.Next;
            _count--;
            node.Next = null;
            node.ChainLength = 0;
            return node;
        }

        return new TrackedNode();
    }

    /// <summary>Keeps a released, reset node; the caller holds the owner's registry lock.</summary>
    public void Give(TrackedNode node)
    {
        Debug.Assert(node.Id == 0 && node.Tracker is null, "Only a released, reset node is pooled.");
        if (_count < MaxPooled)
        {
            node.Next = _free;
            _free = node;
            _count++;
        }
    }

    /// <summary>Hands every pooled node to the shared reservoir, if it is empty; the caller holds the owner's registry lock.</summary>
    public void HandBack()
    {
        if (_free is { } chain)
        {
            chain.ChainLength = _count;
            if (Interlocked.CompareExchange(ref s_reservoir, chain, null) is null)
            {
                _free = null;
                _count = 0;
            }
        }
    }
}
