using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

// Posting a message: the bounds (the peer's quota, then the pump's capacity), the full modes, and the waits for room.
public sealed partial class PeerEventPump<TPeer, TMessage>
{
    internal PeerPostResult Post(PeerHandle<TPeer, TMessage> handle, TMessage message)
    {
        PeerPostResult result;
        var dropped = default(DroppedMessage);
        bool schedule;
        lock (_lock)
        {
            var grants = RoomGrants.None;
            result = TryEnqueueMessageLocked(handle, message, canWait: false, ref grants, out _, out _, ref dropped) ?? PeerPostResult.Full;
            schedule = result == PeerPostResult.Posted && ScheduleLocked();
        }

        AfterPost(schedule, in dropped);
        return result;
    }

    internal ValueTask<PeerPostResult> PostAsync(PeerHandle<TPeer, TMessage> handle, TMessage message, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return new ValueTask<PeerPostResult>(Task.FromCanceled<PeerPostResult>(cancellationToken));
        }

        PeerPostResult result;
        var dropped = default(DroppedMessage);
        bool schedule;
        lock (_lock)
        {
            var grants = RoomGrants.None;
            if (TryEnqueueMessageLocked(handle, message, canWait: true, ref grants, out var room, out var waitingFor, ref dropped) is not { } outcome)
            {
                return WaitForRoomThenPostAsync(handle, message, room!, waitingFor, grants, cancellationToken);
            }

            result = outcome;
            schedule = result == PeerPostResult.Posted && ScheduleLocked();
        }

        AfterPost(schedule, in dropped);
        return new ValueTask<PeerPostResult>(result);
    }

    /// <summary>After a post, outside the lock: starts the loop if it must, and reports a dropped message (the logger and the callback are user code).</summary>
    private void AfterPost(bool schedule, in DroppedMessage dropped)
    {
        if (schedule)
        {
            _loop.Start();
        }

        if (dropped.Handle is not null)
        {
            ReportDropped(in dropped);
        }
    }

    /// <summary>
    /// Queues a message if the handle is ready and it fits both bounds: its peer's quota first, then the pump's capacity.
    /// Returns what became of it, or <see langword="null"/> (with a waiter in <paramref name="room"/>, for the bound named
    /// by <paramref name="waitingFor"/>) when the caller may wait for room. <paramref name="grants"/>: the places the
    /// caller holds (granted while it waited, or reserved before a wait); a post into them never waits for that bound
    /// again, and the places are given up (to the next waiter) if the post is refused. A message dropped (displaced to
    /// make room, or refused by DropWrite) is returned in <paramref name="dropped"/>, to be reported after the lock is released.
    /// </summary>
    private PeerPostResult? TryEnqueueMessageLocked(
        PeerHandle<TPeer, TMessage> handle,
        TMessage message,
        bool canWait,
        ref RoomGrants grants,
        out TaskCompletionSource<bool>? room,
        out RoomGrants waitingFor,
        ref DroppedMessage dropped)
    {
        room = null;
        waitingFor = RoomGrants.None;
        var refusal = !_accepting ? PeerPostResult.Closed
            : handle.ProducerState == Connected ? PeerPostResult.NotReady
            : handle.ProducerState == Disconnected ? PeerPostResult.Disconnected
            : (PeerPostResult?)null;
        if (refusal is { } refused)
        {
            ReleaseGrantsLocked(handle, ref grants); // the places it was granted go to the next waiters
            return refused;
        }

        // The peer's quota first: a peer at its quota waits or drops on its own, and never takes (or waits in line for) a
        // place in the pump's capacity that the other peers need.
        var quota = handle.Quota;
        var displacedOwn = false;
        if (quota is not null && (grants & RoomGrants.Peer) == 0 && IsPeerFullForNewPostsLocked(handle, quota))
        {
            switch (_fullMode)
            {
                case PeerEventPumpFullMode.DropWrite:
                    dropped = new DroppedMessage(handle, message, DropReason.PeerCapacity);
                    return PeerPostResult.Dropped;
                case PeerEventPumpFullMode.DropOldest or PeerEventPumpFullMode.DropNewest:
                    // Room made by the peer's own message: the pump's count does not grow either, so its capacity is not looked at.
                    displacedOwn = DropPeerMessageLocked(handle, quota, out var displaced);
                    if (displacedOwn)
                    {
                        dropped = new DroppedMessage(handle, displaced, DropReason.PeerCapacity);
                    }

                    break;
                case PeerEventPumpFullMode.Wait when canWait:
                    // As for the pump's capacity below: tell the loop, then look again.
                    Interlocked.Exchange(ref handle.QuotaRoomWanted, 1);
                    if (IsPeerFullForNewPostsLocked(handle, quota))
                    {
                        room = AddPeerWaiterLocked(handle, quota);
                        waitingFor = RoomGrants.Peer;
                        return null;
                    }

                    break;
                default:
                    ReleaseGrantsLocked(handle, ref grants); // a place it holds in the pump's capacity is not kept by a refused post
                    return PeerPostResult.Full;
            }
        }

        if (!displacedOwn && (grants & RoomGrants.Pump) == 0 && IsFullForNewPostsLocked())
        {
            switch (_fullMode)
            {
                case PeerEventPumpFullMode.DropWrite:
                    ReleaseGrantsLocked(handle, ref grants);
                    dropped = new DroppedMessage(handle, message, DropReason.Capacity);
                    return PeerPostResult.Dropped;
                case PeerEventPumpFullMode.DropOldest or PeerEventPumpFullMode.DropNewest:
                    var readerChunk = Volatile.Read(ref _loop.Reader.Chunk);
                    TMessage displaced;
                    var owner = _fullMode == PeerEventPumpFullMode.DropOldest ? _queue.DropOldestMessage(readerChunk, out displaced) : _queue.DropNewestMessage(readerChunk, out displaced);
                    if (owner is not null)
                    {
                        OnQueuedMessageDroppedLocked(owner);
                        dropped = new DroppedMessage(owner, displaced, DropReason.Capacity);
                    }

                    break;
                case PeerEventPumpFullMode.Wait when canWait:
                    // Tell the loop that someone waits, then look again: a message it took meanwhile may have made room
                    // (the loop reads the flag after publishing every message it takes).
                    Interlocked.Exchange(ref _loop.RoomWanted, 1);
                    if (IsFullForNewPostsLocked())
                    {
                        room = _roomWaiters.Add(handle);
                        waitingFor = RoomGrants.Pump;
                        if (quota is not null && (grants & RoomGrants.Peer) == 0)
                        {
                            // Hold the peer's place while waiting for the pump's: once granted, the post goes in at once.
                            quota.Reserved++;
                            grants |= RoomGrants.Peer;
                        }

                        return null;
                    }

                    break;
                default:
                    ReleaseGrantsLocked(handle, ref grants);
                    return PeerPostResult.Full;
            }
        }

        // The places the post held are now its message's.
        if ((grants & RoomGrants.Pump) != 0)
        {
            _reserved--;
        }

        if (quota is null)
        {
            _queue.Enqueue(new PeerEvent<TPeer, TMessage>(PeerEventKind.Message, handle, message));
        }
        else
        {
            if ((grants & RoomGrants.Peer) != 0)
            {
                quota.Reserved--;
            }

            quota.Admitted++;
            quota.Newest = _queue.EnqueueAt(new PeerEvent<TPeer, TMessage>(PeerEventKind.Message, handle, message));
        }

        grants = RoomGrants.None;
        _admitted++;
        if (_metrics.Queued.Enabled)
        {
            _metrics.Queued.Add(1, _metricTag);
        }

        return PeerPostResult.Posted;
    }

    /// <summary>
    /// Whether a post that holds no reserved place finds the queue full: <see cref="PeerEventPumpOptions.Capacity"/> messages
    /// wait or are reserved, or (Wait mode) callers are still in line for room, whom it must not overtake. Called under the lock.
    /// </summary>
    private bool IsFullForNewPostsLocked()
    {
        if (_fullMode == PeerEventPumpFullMode.Wait && !_roomWaiters.IsEmpty)
        {
            WakeRoomLocked(); // room there is goes to them first (and stale entries of waiters that left are dropped)
            if (!_roomWaiters.IsEmpty)
            {
                return true;
            }
        }

        return _admitted + _reserved - _takenSeen >= _capacity && IsFullLocked();
    }

    private async ValueTask<PeerPostResult> WaitForRoomThenPostAsync(
        PeerHandle<TPeer, TMessage> handle,
        TMessage message,
        TaskCompletionSource<bool> room,
        RoomGrants waitingFor,
        RoomGrants grants,
        CancellationToken cancellationToken)
    {
        // At most twice: for the peer's quota, then for the pump's capacity (holding the peer's place meanwhile).
        while (true)
        {
            bool granted;
            try
            {
                // True: a place is reserved for this post. False: the wait ended without one (the handle disconnected, or
                // the pump shut down); the look below says which.
                granted = await Signals.WaitAsync(room.Task, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // A waiter that gave up must not keep a place granted to it meanwhile (nor one it held while it waited):
                // they go to the next waiters.
                lock (_lock)
                {
                    if (!room.TrySetCanceled(cancellationToken) && room.Task.Status == TaskStatus.RanToCompletion && GrantOf(room.Task))
                    {
                        grants |= waitingFor;
                    }

                    ReleaseGrantsLocked(handle, ref grants);
                }

                throw;
            }

            if (granted)
            {
                grants |= waitingFor;
            }

            PeerPostResult? outcome;
            bool schedule;
            lock (_lock)
            {
                // A post released without a place is refused (disconnected or closed); one granted a place may still wait
                // for the other bound.
                var dropped = default(DroppedMessage);
                outcome = TryEnqueueMessageLocked(handle, message, canWait: granted, ref grants, out var next, out waitingFor, ref dropped);
                Debug.Assert(dropped.Handle is null, "A post holding the places it waited for drops nothing: waiting is the Wait mode's.");
                if (outcome is null)
                {
                    room = next!;
                    continue;
                }

                schedule = outcome == PeerPostResult.Posted && ScheduleLocked();
            }

            AfterPost(schedule, default);
            return outcome.Value;
        }
    }

    /// <summary>Whether <see cref="PeerEventPumpOptions.Capacity"/> messages wait (or are reserved), by the loop's latest count. Called under the lock.</summary>
    private bool IsFullLocked()
    {
        _takenSeen = Volatile.Read(ref _loop.Taken);
        return _admitted + _reserved - _takenSeen >= _capacity;
    }
}
