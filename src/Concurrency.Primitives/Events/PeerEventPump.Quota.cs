using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives;

#pragma warning disable VSTHRD002 // GrantOf reads only a completed task.

// The per-peer quota (PerPeerCapacity) and the reporting of dropped messages. The quota mirrors the pump's capacity,
// per handle: producers count what a handle admitted (PeerQuota.Admitted, under _lock), the loop counts what it took of
// that handle (PeerHandle.LoopTaken, without a lock), and a producer reads the loop's count again only when the quota
// looks full. A handle's posts waiting for its quota wait in a line of their own, so that no other peer waits behind them.
// Room in a quota appears only when the loop takes one of the handle's messages (it then wakes the handle's line: a
// fenced count, then the flag, against the producer's fenced flag, then the count) or when a waiting post gives its
// place up (ReleaseGrantsLocked wakes the line); Wait mode drops nothing.
public sealed partial class PeerEventPump<TPeer, TMessage>
{
    /// <summary>Which bounds a post holds a place in.</summary>
    [Flags]
    private enum RoomGrants
    {
        None = 0,

        /// <summary>A place in <see cref="PeerEventPumpOptions.Capacity"/>, granted by <see cref="WakeRoomLocked"/> (counted in <c>_reserved</c>).</summary>
        Pump = 1,

        /// <summary>A place in the handle's quota, granted by <see cref="WakePeerRoomLocked"/> or held while waiting for the pump's (counted in <see cref="PeerQuota{TPeer, TMessage}.Reserved"/>).</summary>
        Peer = 2,
    }

    private enum DropReason
    {
        /// <summary>The pump's capacity was full.</summary>
        Capacity,

        /// <summary>The peer's quota was full.</summary>
        PeerCapacity,

        /// <summary>Discarded from the queue when the consumer faulted the pump.</summary>
        Fault,
    }

    /// <summary>Whether a post of <paramref name="handle"/> that holds no place in its quota finds it full (or must wait behind the handle's earlier posts). Called under the lock.</summary>
    private bool IsPeerFullForNewPostsLocked(PeerHandle<TPeer, TMessage> handle, PeerQuota<TPeer, TMessage> quota)
    {
        if (_fullMode == PeerEventPumpFullMode.Wait && quota.Waiters is { IsEmpty: false } waiters)
        {
            // Room there is goes to the handle's earlier posts first. The flag stays up: a post about to wait raised it before
            // this look, and the loop, which may take one of the handle's messages meanwhile, must still see it.
            WakePeerRoomLocked(handle, quota, lowerFlag: false);
            if (!waiters.IsEmpty)
            {
                return true;
            }
        }

        if (quota.Admitted + quota.Reserved - quota.TakenSeen < _perPeerCapacity)
        {
            return false;
        }

        quota.TakenSeen = Volatile.Read(ref handle.LoopTaken);
        return quota.Admitted + quota.Reserved - quota.TakenSeen >= _perPeerCapacity;
    }

    private TaskCompletionSource<bool> AddPeerWaiterLocked(PeerHandle<TPeer, TMessage> handle, PeerQuota<TPeer, TMessage> quota)
    {
        return (quota.Waiters ??= new RoomWaiters()).Add(handle);
    }

    /// <summary>
    /// Grants the free places of <paramref name="handle"/>'s quota to its waiting posts, oldest first; lowers the handle's
    /// flag once none waits (unless <paramref name="lowerFlag"/> is <see langword="false"/>). Called under the lock.
    /// </summary>
    private void WakePeerRoomLocked(PeerHandle<TPeer, TMessage> handle, PeerQuota<TPeer, TMessage> quota, bool lowerFlag = true)
    {
        quota.TakenSeen = Volatile.Read(ref handle.LoopTaken);
        var room = _perPeerCapacity - (quota.Admitted + quota.Reserved - quota.TakenSeen);
        if (room > 0 && quota.Waiters is { IsEmpty: false } waiters)
        {
            quota.Reserved += waiters.Wake(room > int.MaxValue ? int.MaxValue : (int)room);
        }

        if (lowerFlag && (quota.Waiters is null || quota.Waiters.IsEmpty))
        {
            Volatile.Write(ref handle.QuotaRoomWanted, 0);
        }
    }

    /// <summary>
    /// Drops <paramref name="handle"/>'s own oldest or newest waiting message (by the full mode) to make room in its quota;
    /// <see langword="false"/> if the loop has taken them all meanwhile (its count was behind). Called under the lock.
    /// </summary>
    private bool DropPeerMessageLocked(PeerHandle<TPeer, TMessage> handle, PeerQuota<TPeer, TMessage> quota, out TMessage message)
    {
        var readerChunk = Volatile.Read(ref _loop.Reader.Chunk);
        var dropped = _fullMode == PeerEventPumpFullMode.DropOldest
            ? _queue.DropOldestMessageOf(handle, ref quota.OldestScan, readerChunk, out message)
            : _queue.DropNewestMessageOf(handle, quota.Newest, readerChunk, out message);
        if (dropped)
        {
            OnQueuedMessageDroppedLocked(handle);
        }

        return dropped;
    }

    /// <summary>A queued message of <paramref name="owner"/> was dropped: it no longer counts against either bound. Called under the lock.</summary>
    private void OnQueuedMessageDroppedLocked(PeerHandle<TPeer, TMessage> owner)
    {
        _admitted--;
        if (owner.Quota is { } quota)
        {
            quota.Admitted--;
        }

        if (_metrics.Queued.Enabled)
        {
            _metrics.Queued.Add(-1, _metricTag);
        }
    }

    /// <summary>Gives up the places a post held (it was refused, or gave up waiting): they go to the next waiters. Called under the lock.</summary>
    private void ReleaseGrantsLocked(PeerHandle<TPeer, TMessage> handle, ref RoomGrants grants)
    {
        if ((grants & RoomGrants.Pump) != 0)
        {
            _reserved--;
            if (_accepting)
            {
                WakeRoomLocked();
            }
        }

        if ((grants & RoomGrants.Peer) != 0)
        {
            var quota = handle.Quota!;
            quota.Reserved--;
            if (handle.ProducerState == Ready)
            {
                WakePeerRoomLocked(handle, quota);
            }
        }

        grants = RoomGrants.None;
    }

    /// <summary>Whether a completed room signal granted a place.</summary>
    private static bool GrantOf(Task<bool> completed) => completed.Result;

    /// <summary>Counts, logs and hands to the callback one dropped message. Outside every lock: the logger and the callback are user code.</summary>
    private void ReportDropped(in DroppedMessage dropped)
    {
        if (_metrics.Dropped.Enabled)
        {
            _metrics.Dropped.Add(1, _metricTag, new KeyValuePair<string, object?>("drop.reason", dropped.Reason switch
            {
                DropReason.PeerCapacity => "peer_capacity",
                DropReason.Fault => "fault",
                _ => "capacity",
            }));
        }

        if (dropped.Reason != DropReason.Fault && _logger.IsEnabled(LogLevel.Warning))
        {
            var peer = dropped.Handle!.Peer.ToString() ?? string.Empty;
            if (dropped.Reason == DropReason.PeerCapacity)
            {
                PeerEventPumpLog.PeerMessageDropped(_logger, _name, peer, _perPeerCapacity, _fullMode);
            }
            else
            {
                PeerEventPumpLog.MessageDropped(_logger, _name, peer, _fullMode);
            }
        }

        if (_messageDropped is { } callback)
        {
            try
            {
                callback(dropped.Handle!.Peer, dropped.Message);
            }
            catch (Exception exception)
            {
                if (_metrics.CallbackFaults.Enabled)
                {
                    _metrics.CallbackFaults.Add(1, _metricTag, new KeyValuePair<string, object?>("callback", "message_dropped"));
                }

                PeerEventPumpLog.DropCallbackFailed(_logger, _name, dropped.Handle!.Peer.ToString() ?? string.Empty, exception);
            }
        }
    }

    /// <summary>A message the pump will never deliver, on its way from under the lock to <see cref="ReportDropped"/>.</summary>
    private readonly struct DroppedMessage
    {
        public readonly PeerHandle<TPeer, TMessage>? Handle;
        public readonly TMessage Message;
        public readonly DropReason Reason;

        public DroppedMessage(PeerHandle<TPeer, TMessage> handle, TMessage message, DropReason reason)
        {
            Handle = handle;
            Message = message;
            Reason = reason;
        }
    }
}

/// <summary>The producer side of one handle's <see cref="PeerEventPumpOptions.PerPeerCapacity"/>: guarded by the pump's lock.</summary>
internal sealed class PeerQuota<TPeer, TMessage>
    where TPeer : notnull
{
    /// <summary>The handle's messages accepted and not dropped.</summary>
    public long Admitted;

    /// <summary>The last <see cref="PeerHandle{TPeer, TMessage}.LoopTaken"/> a producer read: with <see cref="Admitted"/>, it bounds the messages waiting from above.</summary>
    public long TakenSeen;

    /// <summary>Places granted to the handle's waiting posts, or held by its posts waiting for the pump's capacity.</summary>
    public long Reserved;

    /// <summary>The handle's posts waiting for its quota (Wait mode), oldest first; created at the first wait.</summary>
    public RoomWaiters? Waiters;

    /// <summary>Where the handle's last message was queued (DropNewest).</summary>
    public QueuePosition<TPeer, TMessage> Newest;

    /// <summary>No message of the handle waits before this place (DropOldest).</summary>
    public QueuePosition<TPeer, TMessage> OldestScan;
}
