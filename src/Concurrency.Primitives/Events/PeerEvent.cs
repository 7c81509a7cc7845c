using System;

namespace Concurrency.Primitives;

/// <summary>One queued event. Stored by value in the pump's buffers, so queuing an event allocates nothing.</summary>
internal struct PeerEvent<TPeer, TMessage>
    where TPeer : notnull
{
    public PeerEventKind Kind;
    public PeerHandle<TPeer, TMessage> Handle;
    public TMessage Message;

    public PeerEvent(PeerEventKind kind, PeerHandle<TPeer, TMessage> handle, TMessage message)
    {
        Kind = kind;
        Handle = handle;
        Message = message;
    }
}

internal enum PeerEventKind : byte
{
    Added,
    Message,
    Removed,

    /// <summary>A message displaced by <see cref="PeerEventPumpFullMode.DropOldest"/>: skipped by the loop.</summary>
    Dropped,
}

/// <summary>A growable array of events; the pump swaps two of them between producers and the loop.</summary>
internal sealed class PeerEventBuffer<TPeer, TMessage>
    where TPeer : notnull
{
    public PeerEvent<TPeer, TMessage>[] Items = new PeerEvent<TPeer, TMessage>[64];
    public int Count;

    /// <summary>Where to start looking for the oldest message to drop (everything before it is not a live message).</summary>
    public int OldestMessageHint;

    public void Add(in PeerEvent<TPeer, TMessage> item)
    {
        if (Count == Items.Length)
        {
            Array.Resize(ref Items, Items.Length * 2);
        }

        Items[Count++] = item;
    }

    public void Clear()
    {
        Array.Clear(Items, 0, Count);
        Count = 0;
        OldestMessageHint = 0;
    }

    /// <summary>Turns the oldest waiting message into a tombstone; returns its handle, or <see langword="null"/> if none waits.</summary>
    public PeerHandle<TPeer, TMessage>? DropOldestMessage()
    {
        for (var i = OldestMessageHint; i < Count; i++)
        {
            if (Items[i].Kind == PeerEventKind.Message)
            {
                Items[i].Kind = PeerEventKind.Dropped;
                Items[i].Message = default!;
                OldestMessageHint = i + 1;
                return Items[i].Handle;
            }
        }

        OldestMessageHint = Count;
        return null;
    }
}
