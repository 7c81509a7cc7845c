using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives;

/// <summary>The registry: admitting and releasing registrations, each in one step with the count.</summary>
public sealed partial class TaskTracker
{
    private (TrackedNode Node, long Id)? TryRegister(
        TrackedNode? parent,
        long parentId,
        TrackedOperationKind kind,
        string? name,
        Func<CancellationToken, Task>? work,
        Func<TrackedOperation, CancellationToken, Task>? workWithHandle,
        out Rejection rejection)
    {
        // Work done outside the lock: the clock read and the (opt-in) stack walk.
        var timestamp = _clock.Now();
        var stackTrace = _captureStackTraces ? new StackTrace(2, fNeedFileInfo: true).ToString() : null;
        TrackedNode node;
        long id;
        var next = 0L;
        lock (_registry)
        {
            SweepHeadLocked();

            AssertInvariants();
            // A child is admitted only while its parent is live: the parent's count then keeps the
            // tracker from completing, which is what makes registering during a close safe.
            var parentLive = parent is null || (Volatile.Read(ref parent.Id) == parentId && ReferenceEquals(parent.Tracker, this));
            rejection = parentLive ? TryCountOperation(topLevel: parent is null, out next) : Rejection.ParentInactive;
            if (rejection != Rejection.None)
            {
                return null;
            }

            node = _pool.Take();
            node.Tracker = this;
            id = ++_lastId;
            node.Id = id;
            node.ParentId = parent is null ? 0 : parentId;
            node.Name = name ?? UnnamedOperation;
            node.Kind = kind;
            node.RegisteredTimestamp = timestamp;
            node.StackTrace = stackTrace;
            node.Work = work;
            node.WorkWithHandle = workWithHandle;
            _live.AddLast(node);
            _liveCount++;
        }

        if (TaskTrackerMetrics.Outstanding.Enabled)
        {
            TaskTrackerMetrics.Outstanding.Add(1, _metricTag);
        }

        if (_logger.IsEnabled(LogLevel.Debug))
        {
            TaskTrackerLog.Registered(_logger, _name, kind, node.Name, id, CountOf(next));
        }

        return (node, id);
    }

    private Rejection TryCountOperation(bool topLevel, out long next)
    {
        var state = Volatile.Read(ref _state);
        while (true)
        {
            if ((state & CompleteBit) != 0)
            {
                next = state;
                return Rejection.Completed;
            }

            if (topLevel && (state & ClosingBit) != 0)
            {
                next = state;
                return Rejection.Closing;
            }

            if (((state & OperationMask) >> OperationShift) >= MaxCount)
            {
                next = state;
                return Rejection.Overflow;
            }

            next = state + OperationOne;
            var seen = Interlocked.CompareExchange(ref _state, next, state);
            if (seen == state)
            {
                return Rejection.None;
            }

            state = seen;
        }
    }

    /// <summary>Releases one registration exactly once; a stale or repeated release is a no-op.</summary>
    private void Release(TrackedNode node, long id, TrackedOperationKind kind)
    {
        if (kind == TrackedOperationKind.Work)
        {
            ReleaseWork(node, id);
            return;
        }

        string name;
        long next;
        lock (_registry)
        {
            AssertInvariants();
            if (node.Id != id || !ReferenceEquals(node.Tracker, this))
            {
                return;
            }

            if (node.Kind != kind)
            {
                throw new InvalidOperationException(
                    $"'{node.Name}' #{id} is work started by Go; the tracker releases it when the work's task completes. Do not dispose its handle.");
            }

            name = node.Name;
            _live.Remove(node);
            _liveCount--;
            Volatile.Write(ref node.Id, 0);
            node.Work = null;
            node.WorkWithHandle = null;
            node.StackTrace = null;
            node.WaitingForSlot = false;
            node.HoldsSlot = false;
            node.Tracker = null;
            _pool.Give(node);

            next = SubtractOperation();
        }

        if (_logger.IsEnabled(LogLevel.Debug))
        {
            TaskTrackerLog.Released(_logger, _name, name, id, CountOf(next));
        }

        OnCountDropped(next);
    }

    /// <summary>
    /// Releases work started by <c>Go</c>. Only the work's own node calls this, exactly once, so no handle can race it
    /// and it needs no lock: its id goes to zero (every reader of the registry skips such a node, and the node is touched
    /// no more here), then the count drops (completing a closing tracker in the same swap). The node stays linked until
    /// a holder of the registry lock unlinks and pools it (<see cref="SweepHeadLocked"/>).
    /// </summary>
    private void ReleaseWork(TrackedNode node, long id)
    {
        Debug.Assert(node.Id == id && ReferenceEquals(node.Tracker, this) && node.Kind == TrackedOperationKind.Work, "Work is released once, by its own node.");
        var name = node.Name;
        node.Work = null;
        node.WorkWithHandle = null;
        Volatile.Write(ref node.Id, 0);
        var next = SubtractOperation();

        if (_logger.IsEnabled(LogLevel.Debug))
        {
            TaskTrackerLog.Released(_logger, _name, name, id, CountOf(next));
        }

        OnCountDropped(next);
    }

    /// <summary>
    /// Before a registration: unlinks the released nodes at the head of the registry (work mostly finishes in the order
    /// it started), and every released node once they outnumber the counted ones, so that a long-running operation at the
    /// head cannot make the registry grow. Each full sweep at least halves the list, so the cost per registration stays O(1).
    /// </summary>
    private void SweepHeadLocked()
    {
        var node = _live.First;
        while (node is not null && Volatile.Read(ref node.Id) == 0)
        {
            var following = IntrusiveList<TrackedNode, TrackedNodeLinks>.NextOf(node);
            Recycle(node);
            node = following;
        }

        var counted = (int)((Volatile.Read(ref _state) & OperationMask) >> OperationShift);
        if (_liveCount - counted > Math.Max(64, counted))
        {
            SweepReleasedLocked();
        }
    }

    /// <summary>Unlinks and pools every released node; the caller holds the registry lock.</summary>
    private void SweepReleasedLocked()
    {
        var node = _live.First;
        while (node is not null)
        {
            var following = IntrusiveList<TrackedNode, TrackedNodeLinks>.NextOf(node);
            if (Volatile.Read(ref node.Id) == 0)
            {
                Recycle(node);
            }

            node = following;
        }
    }

    private void Recycle(TrackedNode node)
    {
        _live.Remove(node);
        _liveCount--;
        node.StackTrace = null;
        node.WaitingForSlot = false;
        node.HoldsSlot = false;
        node.Tracker = null;
        _pool.Give(node);
    }

    /// <summary>Takes one operation off the count, settling (see <see cref="Settle"/>) in the same swap.</summary>
    private long SubtractOperation()
    {
        var state = Volatile.Read(ref _state);
        while (true)
        {
            var next = Settle(state - OperationOne);
            var seen = Interlocked.CompareExchange(ref _state, next, state);
            if (seen == state)
            {
                return next;
            }

            state = seen;
        }
    }
}
