using System.Runtime.InteropServices;

namespace Concurrency.Primitives;

/// <summary>
/// What every registration writes: the state word, the registry and its pool. It sits on cache lines of its own, a line
/// away from the tracker's other fields, which the pool threads running tracked work read (its logger, its token, its
/// limit): a <c>Go</c> on one core then does not take those lines from the cores running earlier work, nor wait for them.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 192)]
internal struct RegistryState
{
    /// <summary>The tracker's state word: two counts and two flags (see <see cref="TaskTracker"/>).</summary>
    [FieldOffset(64)]
    public long State;

    /// <summary>The last id handed out; ids are never reused.</summary>
    [FieldOffset(72)]
    public long LastId;

    /// <summary>The newest record of the registry, a singly linked list, newest first.</summary>
    [FieldOffset(80)]
    public TrackedNode? Newest;

    /// <summary>The tracker's free records.</summary>
    [FieldOffset(88)]
    public NodePool Pool;

    /// <summary>How many records the registry holds, released ones not yet unlinked included.</summary>
    [FieldOffset(104)]
    public int LiveCount;

    /// <summary>The registry length at which the next registration sweeps.</summary>
    [FieldOffset(108)]
    public int SweepAt;
}
