using System;
using System.Collections.Generic;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Internal;

/// <summary>
/// Callers waiting, oldest first, for room in a bounded queue (the batcher's, the pump's). Not thread-safe: the owner
/// calls every member under its own lock. A waiter that gives up cancels its signal, so that a wake-up is never spent
/// on it: <see cref="Wake"/> counts only the waiters that took theirs.
/// </summary>
internal sealed class RoomWaiters
{
    private readonly Queue<TaskCompletionSource<bool>> _waiters = new();

    public bool IsEmpty => _waiters.Count == 0;

    /// <summary>Queues a new waiter; its task completes with <see langword="true"/> when there is room for it.</summary>
    public TaskCompletionSource<bool> Add()
    {
        var waiter = Signals.Create<bool>();
        _waiters.Enqueue(waiter);
        return waiter;
    }

    /// <summary>Wakes waiters, oldest first, until <paramref name="room"/> of them have taken a wake-up.</summary>
    public void Wake(int room)
    {
        while (room > 0 && _waiters.Count > 0)
        {
            if (_waiters.Dequeue().TrySetResult(true))
            {
                room--;
            }
        }
    }

    /// <summary>Completes every waiter with <see langword="false"/>: there will be no room (shut down).</summary>
    public void ReleaseAll()
    {
        while (_waiters.Count > 0)
        {
            _waiters.Dequeue().TrySetResult(false);
        }
    }

    /// <summary>Fails every waiter with a fresh exception from <paramref name="exception"/>.</summary>
    public void FailAll(Func<Exception> exception)
    {
        while (_waiters.Count > 0)
        {
            _waiters.Dequeue().TrySetException(exception());
        }
    }
}
