using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
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
            AssertInvariants();
            // A child is admitted only while its parent is live: the parent's count then keeps the
            // tracker from completing, which is what makes registering during a close safe.
            var parentLive = parent is null || (parent.Id == parentId && ReferenceEquals(parent.Tracker, this));
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
