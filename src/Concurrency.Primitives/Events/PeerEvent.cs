using System.Threading;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary>One queued event. Stored by value in the pump's queue, so queuing an event allocates nothing.</summary>
internal struct PeerEvent<TPeer, TMessage>
    where TPeer : notnull
{
    /// <summary>A <see cref="PeerEventKind"/>, as an <see cref="int"/> so that a message slot can be claimed atomically.</summary>
    public int Kind;
    public PeerHandle<TPeer, TMessage> Handle;
    public TMessage Message;

    public PeerEvent(PeerEventKind kind, PeerHandle<TPeer, TMessage> handle, TMessage message)
    {
        Kind = (int)kind;
        Handle = handle;
        Message = message;
    }
}

internal enum PeerEventKind
{
    /// <summary>An empty slot (never queued, or already taken by the loop).</summary>
    None,
    Added,
    Message,
    Removed,

    /// <summary>A message displaced by <see cref="PeerEventPumpFullMode.DropOldest"/> or <see cref="PeerEventPumpFullMode.DropNewest"/>: skipped by the loop.</summary>
    Dropped,

    /// <summary>A message the loop claimed (under a dropping full mode) before a producer could drop it.</summary>
    Taken,
}

/// <summary>A fixed run of event slots; the queue is a linked list of them, recycled through a free list.</summary>
internal sealed class PeerEventChunk<TPeer, TMessage> : IFreeListNode<PeerEventChunk<TPeer, TMessage>>
    where TPeer : notnull
{
    public const int Size = 256;

    public readonly PeerEvent<TPeer, TMessage>[] Items = new PeerEvent<TPeer, TMessage>[Size];

    /// <summary>How many slots the producers have filled; published with a volatile write after the slot.</summary>
    public PaddedInt Published; // on a line of its own: the loop reads it while producers read the fields beside it

    /// <summary>The chunk after this one; linked (volatile) once this one is full. Kept until the chunk is reused.</summary>
    public PeerEventChunk<TPeer, TMessage>? Next;

    /// <summary>The link in the free list.</summary>
    public PeerEventChunk<TPeer, TMessage>? NextFree { get; set; }

    /// <summary>Raised every time the chunk is reused, so that a remembered position in it can be recognized as stale.</summary>
    public int Generation;
}

/// <summary>
/// The producer side of the pump's one FIFO queue: many producers, serialized by the pump's lock, append; one consumer
/// (the loop, through <see cref="PeerEventReader{TPeer, TMessage}"/>) takes without any lock. Chunks the loop has finished
/// come back through a free list, so a steady flow allocates nothing; the list keeps the chunks of the deepest backlog.
/// </summary>
internal sealed class PeerEventQueue<TPeer, TMessage>
    where TPeer : notnull
{
    private PeerEventChunk<TPeer, TMessage> _tail;

    // Finished chunks: pushed by the loop without a lock; producers take the whole chain (under the pump's lock) into
    // _spare when they run out, and reuse them from there.
    private PeerEventChunk<TPeer, TMessage>? _free;
    private PeerEventChunk<TPeer, TMessage>? _spare;

    // Drop-oldest scan position: every message before it has been dropped or taken.
    private QueuePosition<TPeer, TMessage> _scan;

    public PeerEventQueue() => _tail = First = new PeerEventChunk<TPeer, TMessage>();

    /// <summary>The first chunk, where the reader starts.</summary>
    public PeerEventChunk<TPeer, TMessage> First { get; }

    /// <summary>Appends an event. Producers only, under the pump's lock.</summary>
    public void Enqueue(in PeerEvent<TPeer, TMessage> item)
    {
        var chunk = _tail;
        var count = chunk.Published.Value;
        if (count == PeerEventChunk<TPeer, TMessage>.Size)
        {
            chunk = Grow(chunk);
            count = 0;
        }

        chunk.Items[count] = item;
        Volatile.Write(ref chunk.Published.Value, count + 1);
    }

    /// <summary>Appends an event and returns where it stands (a peer's newest message, for a drop of it). Producers only, under the pump's lock.</summary>
    public QueuePosition<TPeer, TMessage> EnqueueAt(in PeerEvent<TPeer, TMessage> item)
    {
        Enqueue(in item);
        return new QueuePosition<TPeer, TMessage>(_tail, _tail.Published.Value - 1);
    }

    /// <summary>
    /// Drops the oldest message still waiting (of any peer) and returns its handle, or <see langword="null"/> if none is
    /// waiting. Producers only, under the pump's lock; the loop may be taking messages at the same time, and each slot
    /// goes to exactly one of the two (a compare-and-swap on its kind).
    /// </summary>
    /// <param name="readerChunk">The chunk the loop is reading (or has just left): no message waits before it.</param>
    /// <param name="message">The dropped message, for the pump's message-dropped callback.</param>
    public PeerHandle<TPeer, TMessage>? DropOldestMessage(PeerEventChunk<TPeer, TMessage> readerChunk, out TMessage message) =>
        DropFirstMessage(null, ref _scan, readerChunk, out message);

    /// <summary>
    /// Drops the oldest message of <paramref name="handle"/> still waiting, as <see cref="DropOldestMessage"/> does for any
    /// peer; <paramref name="scan"/> is the handle's own scan position (no message of it waits before it).
    /// </summary>
    public bool DropOldestMessageOf(PeerHandle<TPeer, TMessage> handle, ref QueuePosition<TPeer, TMessage> scan, PeerEventChunk<TPeer, TMessage> readerChunk, out TMessage message) =>
        DropFirstMessage(handle, ref scan, readerChunk, out message) is not null;

    /// <summary>
    /// Drops the newest message still waiting (of any peer) and returns its handle, or <see langword="null"/> if none is
    /// waiting. Producers only, under the pump's lock; each slot goes to exactly one of the loop and this drop (a
    /// compare-and-swap on its kind). The newest message is usually in the last chunk, which is looked at first, from its
    /// end; only if it holds none (lifecycle events only) are the chunks before it walked.
    /// </summary>
    /// <param name="readerChunk">The chunk the loop is reading (or has just left): no message waits before it.</param>
    /// <param name="message">The dropped message, for the pump's message-dropped callback.</param>
    public PeerHandle<TPeer, TMessage>? DropNewestMessage(PeerEventChunk<TPeer, TMessage> readerChunk, out TMessage message)
    {
        if (DropLastMessageIn(_tail, _tail.Published.Value, null, out message) is { } dropped)
        {
            return dropped;
        }

        var last = LastChunkWithMessage(readerChunk, null);
        return last is null ? null : DropLastMessageIn(last, last.Published.Value, null, out message);
    }

    /// <summary>
    /// Drops the newest message of <paramref name="handle"/> still waiting; <paramref name="newest"/> is where the handle's
    /// last message was queued. Usually that message itself; if it was taken, so were all of the handle's messages before
    /// it (one FIFO) and nothing is dropped; only if a drop of any peer's message took it are the chunks walked.
    /// </summary>
    public bool DropNewestMessageOf(PeerHandle<TPeer, TMessage> handle, QueuePosition<TPeer, TMessage> newest, PeerEventChunk<TPeer, TMessage> readerChunk, out TMessage message)
    {
        message = default!;
        if (!newest.IsValid)
        {
            return false; // its chunk was reused: the loop has passed every message of the handle
        }

        ref var slot = ref newest.Chunk!.Items[newest.Index];
        var kind = Volatile.Read(ref slot.Kind);
        if (kind == (int)PeerEventKind.Message && ReferenceEquals(slot.Handle, handle) && TryDrop(ref slot, out message) is not null)
        {
            return true;
        }

        if (kind != (int)PeerEventKind.Dropped)
        {
            return false; // taken (or being taken): so is every earlier message of the handle
        }

        var last = LastChunkWithMessage(readerChunk, handle);
        return last is not null && DropLastMessageIn(last, last.Published.Value, handle, out message) is not null;
    }

    /// <summary>
    /// Drops the first waiting message (of <paramref name="handle"/>, or of any peer when it is <see langword="null"/>) at
    /// or after <paramref name="scan"/>, and moves the scan past it.
    /// </summary>
    private PeerHandle<TPeer, TMessage>? DropFirstMessage(PeerHandle<TPeer, TMessage>? handle, ref QueuePosition<TPeer, TMessage> scan, PeerEventChunk<TPeer, TMessage> readerChunk, out TMessage message)
    {
        var (chunk, index) = scan.IsValid ? (scan.Chunk, scan.Index) : (readerChunk, 0);
        for (; chunk is not null; chunk = chunk.Next, index = 0)
        {
            var count = chunk.Published.Value;
            for (; index < count; index++)
            {
                ref var slot = ref chunk.Items[index];
                if (IsMessageOf(ref slot, handle) && TryDrop(ref slot, out message) is { } dropped)
                {
                    scan = new QueuePosition<TPeer, TMessage>(chunk, index + 1);
                    return dropped;
                }
            }
        }

        scan = new QueuePosition<TPeer, TMessage>(_tail, _tail.Published.Value);
        message = default!;
        return null;
    }

    /// <summary>The last chunk, from <paramref name="readerChunk"/> on, that holds a waiting message (of <paramref name="handle"/>, or of any peer).</summary>
    private PeerEventChunk<TPeer, TMessage>? LastChunkWithMessage(PeerEventChunk<TPeer, TMessage> readerChunk, PeerHandle<TPeer, TMessage>? handle)
    {
        // The chunks are linked forwards only: walk them all.
        PeerEventChunk<TPeer, TMessage>? last = null;
        for (var chunk = readerChunk; chunk is not null; chunk = chunk.Next)
        {
            var count = chunk.Published.Value;
            for (var index = 0; index < count; index++)
            {
                if (IsMessageOf(ref chunk.Items[index], handle))
                {
                    last = chunk;
                    break;
                }
            }
        }

        return last;
    }

    private static PeerHandle<TPeer, TMessage>? DropLastMessageIn(PeerEventChunk<TPeer, TMessage> chunk, int count, PeerHandle<TPeer, TMessage>? handle, out TMessage message)
    {
        for (var index = count - 1; index >= 0; index--)
        {
            ref var slot = ref chunk.Items[index];
            if (IsMessageOf(ref slot, handle) && TryDrop(ref slot, out message) is { } dropped)
            {
                return dropped;
            }
        }

        message = default!;
        return null;
    }

    private static bool IsMessageOf(ref PeerEvent<TPeer, TMessage> slot, PeerHandle<TPeer, TMessage>? handle) =>
        Volatile.Read(ref slot.Kind) == (int)PeerEventKind.Message && (handle is null || ReferenceEquals(slot.Handle, handle));

    /// <summary>Claims a message slot for a drop, racing the loop's claim; returns its handle (and message) if the drop won.</summary>
    private static PeerHandle<TPeer, TMessage>? TryDrop(ref PeerEvent<TPeer, TMessage> slot, out TMessage message)
    {
        // Read before the swap: once dropped, the loop may pass the slot; once taken, it clears it.
        var handle = slot.Handle;
        message = slot.Message;
        if (Interlocked.CompareExchange(ref slot.Kind, (int)PeerEventKind.Dropped, (int)PeerEventKind.Message) == (int)PeerEventKind.Message)
        {
            slot.Message = default!; // released at once, not when the loop passes the slot
            return handle;
        }

        message = default!;
        return null;
    }

    /// <summary>Takes back a chunk the loop has finished (every slot taken and cleared). The loop only.</summary>
    public void Return(PeerEventChunk<TPeer, TMessage> chunk) => FreeList.Push(ref _free, chunk);

    private PeerEventChunk<TPeer, TMessage> Grow(PeerEventChunk<TPeer, TMessage> full)
    {
        var next = TakeFree() ?? new PeerEventChunk<TPeer, TMessage>();

        // After the resets in TakeFree: the loop reaches the chunk only through this link.
        Volatile.Write(ref full.Next, next);
        _tail = next;
        return next;
    }

    private PeerEventChunk<TPeer, TMessage>? TakeFree()
    {
        var chunk = _spare ?? FreeList.TakeAll(ref _free);
        if (chunk is null)
        {
            return null;
        }

        _spare = chunk.NextFree;
        chunk.NextFree = null;
        chunk.Next = null;
        chunk.Published.Value = 0;
        chunk.Generation++;
        return chunk;
    }
}

/// <summary>A remembered place in the queue; valid while its chunk has not been reused (its generation is unchanged).</summary>
internal readonly struct QueuePosition<TPeer, TMessage>
    where TPeer : notnull
{
    public readonly PeerEventChunk<TPeer, TMessage>? Chunk;
    public readonly int Index;
    private readonly int _generation;

    public QueuePosition(PeerEventChunk<TPeer, TMessage> chunk, int index)
    {
        Chunk = chunk;
        Index = index;
        _generation = chunk.Generation;
    }

    public bool IsValid => Chunk is not null && Chunk.Generation == _generation;
}

/// <summary>The consumer side of <see cref="PeerEventQueue{TPeer, TMessage}"/>: held and used by the pump's loop alone.</summary>
internal struct PeerEventReader<TPeer, TMessage>
    where TPeer : notnull
{
    /// <summary>The chunk being read; producers read it (volatile) to start a drop-oldest scan.</summary>
    public PeerEventChunk<TPeer, TMessage> Chunk;
    private readonly PeerEventQueue<TPeer, TMessage> _queue;
    private readonly bool _claim;
    private PeerEvent<TPeer, TMessage>[] _items; // Chunk.Items, cached: the chunk object's fields share a line that producers write
    private int _index;
    private int _known;

    /// <param name="queue">The queue to read, from its first chunk.</param>
    /// <param name="claim">
    /// Drop-oldest mode: each message is claimed with a compare-and-swap, racing producers' drops. Without it (no
    /// producer ever drops a queued message) a message is read plainly.
    /// </param>
    public PeerEventReader(PeerEventQueue<TPeer, TMessage> queue, bool claim)
    {
        Chunk = queue.First;
        _queue = queue;
        _claim = claim;
        _items = Chunk.Items;
        _index = 0;
        _known = 0;
    }

    /// <summary>Takes the next event, clearing its slot; <see langword="false"/> if none is published. Skips dropped messages.</summary>
    public bool TryTake(out PeerEvent<TPeer, TMessage> item)
    {
        while (true)
        {
            var chunk = Chunk;
            if (_index < _known || _index < (_known = Volatile.Read(ref chunk.Published.Value)))
            {
                ref var slot = ref _items[_index++];
                var kind = slot.Kind;
                if (_claim && kind == (int)PeerEventKind.Message)
                {
                    kind = Interlocked.CompareExchange(ref slot.Kind, (int)PeerEventKind.Taken, (int)PeerEventKind.Message);
                }

                if (kind == (int)PeerEventKind.Dropped)
                {
                    continue;
                }

                item = slot;
                item.Kind = kind;
                slot = default; // the loop holds no reference to a delivered event
                return true;
            }

            var next = _index == PeerEventChunk<TPeer, TMessage>.Size ? Volatile.Read(ref chunk.Next) : null;
            if (next is null)
            {
                item = default;
                return false;
            }

            Volatile.Write(ref Chunk, next);
            _items = next.Items;
            _index = 0;
            _known = 0;
            _queue.Return(chunk);
        }
    }
}
