using System.Runtime.InteropServices;

namespace Concurrency.Primitives;

/// <summary>
/// What a batcher's submit path reads and writes without the batcher's lock: the ring's claim word (the next index to
/// claim, with the shutdown and resize flags), the cached room limit, the count of running dispatch loops and the
/// room-waiter flag, and the clock epoch. The claim word, the limit, the loop count and the epoch sit on a cache line of their own, a line away from the
/// cut side's <see cref="CutState"/>, so that a submit touches one line that the dispatch loops seldom read; the
/// room-waiter flag, which every submit and every cut read and which changes only when callers start or stop waiting
/// for room, sits on another, so that a cut's look at it does not take the claim word's line from the submits; the loops'
/// queueing hint (<see cref="Wide"/>) on a third.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 256)]
internal struct SubmitState
{
    /// <summary>The next ring index to claim (below <see cref="IndexMask"/>), with <see cref="Closing"/> and <see cref="Resizing"/>.</summary>
    [FieldOffset(64)]
    public long Tail;

    /// <summary>
    /// A claim below this index has room (its cell is free and the queue is under Capacity), as of the last look at the
    /// cut side: a cached bound, only ever too low, refreshed when a claim reaches it.
    /// </summary>
    [FieldOffset(72)]
    public long Limit;

    /// <summary>Dispatch loops running (each holds one of MaxConcurrency slots).</summary>
    [FieldOffset(80)]
    public int Loops;

    /// <summary>
    /// The current clock epoch (see <see cref="ClockEpochs"/>), which a submit reads to stamp its item's arrival where the
    /// batcher keeps epochs: on the claim word's line, which the submit holds already; advanced by the deadline sweep at
    /// most every few milliseconds.
    /// </summary>
    [FieldOffset(88)]
    public long Epoch;

    /// <summary>Non-zero while callers wait for room (written under the lock); a new submit then queues behind them.</summary>
    [FieldOffset(160)]
    public int RoomWaiters;

    /// <summary>
    /// A countdown, set to its full run by a dispatch of more than one item and lowered by one by each dispatch of a single
    /// item: non-zero while batches hold several items, a sign that the callers they answered are queued on the pool to
    /// resume and submit again. A loop started by a submit is then queued to the pool's shared queue, behind those callers,
    /// so that it finds their items and cuts them together; at zero (one caller at a time) it goes to the submitting
    /// worker's own queue and runs next on that thread, without waking another. Only a hint for where a loop is queued:
    /// no correctness rests on it. Written only when it changes, and 64 bytes or more from the claim word and the room-waiter
    /// flag, so never on their lines.
    /// </summary>
    [FieldOffset(224)]
    public int Wide;

    /// <summary>The claim word's shutdown flag: no index is claimed after it is set.</summary>
    public const long Closing = 1L << 62;

    /// <summary>Set on both the claim and the cut word while the ring grows: no index is claimed or cut meanwhile.</summary>
    public const long Resizing = 1L << 61;

    /// <summary>The index bits of the claim and cut words.</summary>
    public const long IndexMask = Resizing - 1;
}

/// <summary>The cut side's word: the next ring index to cut into a batch (with <see cref="SubmitState.Resizing"/>), on a line of its own.</summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct CutState
{
    [FieldOffset(64)]
    public long Head;
}
