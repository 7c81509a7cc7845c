using System.Runtime.InteropServices;

namespace Concurrency.Primitives;

/// <summary>
/// What a batcher's submit path reads and writes, without the batcher's lock: the admission word, the stack of items
/// submitted but not yet taken into the queue, and the serve duty. It sits on a cache line of its own, a line away from
/// the fields that the dispatches and their lock use, so that a submit touches one line and never waits for that lock.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 192)]
internal struct SubmitState
{
    /// <summary>Items admitted and not yet cut into a batch (low bits), and <see cref="Closing"/> once shutdown begins.</summary>
    [FieldOffset(64)]
    public long Admitted;

    /// <summary>Items submitted and not yet taken into the queue: a lock-free stack, newest first (an item chain).</summary>
    [FieldOffset(72)]
    public object? Incoming;

    /// <summary>Who will serve items pushed now: <see cref="Idle"/>, <see cref="Serving"/> or <see cref="Parked"/>.</summary>
    [FieldOffset(80)]
    public int Duty;

    /// <summary>1 while the queue holds items, as of the last serve (written under the lock when it changes; read by submits).</summary>
    [FieldOffset(84)]
    public int QueueHeld;

    /// <summary>Non-zero while callers wait for room (written under the lock); a new submit then queues behind them.</summary>
    [FieldOffset(88)]
    public int RoomWaiters;

    /// <summary>The admission word's shutdown flag; the count below it never reaches it.</summary>
    public const long Closing = 1L << 40;

    /// <summary>No one is bound to look at the stack again: a submit whose item is due must serve the queue itself.</summary>
    public const int Idle = 0;

    /// <summary>A thread is serving (or about to, under the lock); before it lets go, it looks at the stack once more.</summary>
    public const int Serving = 1;

    /// <summary>Every dispatch slot is busy: the next dispatch to finish serves the queue, so a submit need not.</summary>
    public const int Parked = 2;
}
