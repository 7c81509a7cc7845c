using System;
using System.Collections.Generic;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Internal;

/// <summary>
/// Callers waiting, oldest first, for room in a bounded queue (the batcher's, the pump's). Not thread-safe: the owner
/// calls every member under its own lock. A waiter that gives up cancels its signal, so that a wake-up is never spent
/// on it: <see cref="Wake"/> counts only the waiters that took theirs (and a waiter that gives up just after taking one
/// must hand it on: its owner wakes again).
/// </summary>
internal sealed class RoomWaiters
{
    private readonly Queue<(object? Owner, TaskCompletionSource<bool> Signal)> _waiters = new();

    public bool IsEmpty => _waiters.Count == 0;

    /// <summary>Queues a new waiter; its task completes with <see langword="true"/> when there is room for it.</summary>
    /// <param name="owner">Whose wait this is (a pump's peer handle), for <see cref="Release"/>; or <see langword="null"/>.</param>
    public TaskCompletionSource<bool> Add(object? owner = null)
    {
        var waiter = Signals.Create<bool>();
        _waiters.Enqueue((owner, waiter));
        return waiter;
    }

    /// <summary>
    /// Completes the waits of <paramref name="owner"/> with <see langword="false"/>: room would come too late (its peer is
    /// gone). Their entries stay queued, already completed, and <see cref="Wake"/> skips them.
    /// </summary>
    public void Release(object owner)
    {
        foreach (var (waiterOwner, signal) in _waiters)
        {
            if (ReferenceEquals(waiterOwner, owner))
            {
                signal.TrySetResult(false);
            }
        }
    }

    /// <summary>Wakes waiters, oldest first, until <paramref name="room"/> of them have taken a wake-up; returns how many did.</summary>
    public int Wake(int room)
    {
        var woken = 0;
        while (woken < room && _waiters.Count > 0)
        {
            if (_waiters.Dequeue().Signal.TrySetResult(true))
            {
                woken++;
            }
        }

        return woken;
    }

    /// <summary>Completes every waiter with <see langword="false"/>: there will be no room (shut down).</summary>
    public void ReleaseAll()
    {
        while (_waiters.Count > 0)
        {
            _waiters.Dequeue().Signal.TrySetResult(false);
        }
    }

    /// <summary>Fails every waiter with a fresh exception from <paramref name="exception"/>.</summary>
    public void FailAll(Func<Exception> exception)
    {
        while (_waiters.Count > 0)
        {
            _waiters.Dequeue().Signal.TrySetException(exception());
        }
    }
}
