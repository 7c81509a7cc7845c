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
    /// <summary>
    /// The registry length below which a registration does not sweep. The systematic tests lower it to 1, so that
    /// every registration sweeps and the scheduler interleaves each sweep with the releases it races.
    /// </summary>
    internal static int MinSweepAt = 32;

    /// <summary>Whether releases of Go work take themselves off the count at once (for tests).</summary>
    internal bool ReleasesAreCountedAtOnce => Volatile.Read(ref _releaseMode.Value) == EagerRelease;

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
        TrackedNode? node = null;
        var id = 0L;
        var next = 0L;
        var armWatchdog = false;
        int acknowledged;
        lock (_registry)
        {
            acknowledged = _hot.LiveCount >= _hot.SweepAt ? SweepLocked() : 0;

            AssertInvariants();
            // A child is admitted only while its parent is live: the parent's count then keeps the
            // tracker from completing, which is what makes registering during a close safe. The releases
            // the sweep acknowledged come off the count in the same swap.
            var parentLive = parent is null || (Volatile.Read(ref parent.Id) == parentId && ReferenceEquals(parent.Tracker, this));
            if (parentLive)
            {
                rejection = TryCountOperation(topLevel: parent is null, acknowledged, out next);
            }
            else
            {
                rejection = Rejection.ParentInactive;
                next = acknowledged > 0 ? SubtractOperations(acknowledged) : 0;
            }

            if (rejection == Rejection.None)
            {
                node = _hot.Pool.Take();
                node.Tracker = this;
                id = ++_hot.LastId;
                node.Id = id;
                node.ParentId = parent is null ? 0 : parentId;
                node.Name = name ?? UnnamedOperation;
                node.Kind = kind;
                node.RegisteredTimestamp = timestamp;
                node.StackTrace = stackTrace;
                node.LongRunningReported = false;
                node.Work = work;
                node.WorkWithHandle = workWithHandle;
                node.Next = _hot.Newest;
                _hot.Newest = node;
                _hot.LiveCount++;

                // The watchdog's one timer is armed by the registration that finds it idle; while armed it is due no
                // later than this registration's threshold (it was armed for an older one, or re-armed for the oldest).
                armWatchdog = _watchdog is not null && !_watchdogArmed;
                _watchdogArmed |= armWatchdog;
            }
        }

        if (armWatchdog)
        {
            _watchdog!.Change(_longRunningThreshold, Timeout.InfiniteTimeSpan);
        }

        if (node is null)
        {
            if (acknowledged > 0)
            {
                OnAcknowledged(next); // the swap took the acknowledged releases off; it may have reached zero
            }

            return null;
        }

        if (_metrics.Outstanding.Enabled)
        {
            _metrics.Outstanding.Add(1, _metricTag);
        }

        if (_logger.IsEnabled(LogLevel.Debug))
        {
            TaskTrackerLog.Registered(_logger, _name, kind, node.Name, id, CountOf(next));
        }

        return (node, id);
    }

    /// <summary>
    /// Takes <paramref name="acknowledged"/> swept releases off the count and, unless the tracker refuses it, counts one
    /// more operation, in one swap. <paramref name="next"/> is the state that swap left.
    /// </summary>
    private Rejection TryCountOperation(bool topLevel, int acknowledged, out long next)
    {
        var state = Volatile.Read(ref _hot.State);
        while (true)
        {
            var settled = Settle(state - (OperationOne * acknowledged));
            var rejection =
                (settled & CompleteBit) != 0 ? Rejection.Completed
                : topLevel && (settled & ClosingBit) != 0 ? Rejection.Closing
                : ((settled & OperationMask) >> OperationShift) >= MaxCount ? Rejection.Overflow
                : Rejection.None;
            next = rejection == Rejection.None ? settled + OperationOne : settled;
            if (next == state)
            {
                return rejection; // refused, and nothing acknowledged: nothing to swap
            }

            var seen = Interlocked.CompareExchange(ref _hot.State, next, state);
            if (seen == state)
            {
                return rejection;
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

            // Counted off now. The newest record (a lease released before anything registered after it) is unlinked
            // and pooled at once; any other stays linked, skipped by every reader, until a sweep unlinks it.
            name = node.Name;
            Volatile.Write(ref node.Id, 0);
            node.Work = null;
            node.WorkWithHandle = null;
            if (ReferenceEquals(_hot.Newest, node))
            {
                UnlinkLocked(newer: null, node);
            }

            next = SubtractOperations(1);
        }

        if (_logger.IsEnabled(LogLevel.Debug))
        {
            TaskTrackerLog.Released(_logger, _name, name, id, CountOf(next));
        }

        OnCountDropped(next);
    }

    /// <summary>
    /// Releases work started by <c>Go</c>. Only the work's own node calls this, exactly once, so no handle can race it
    /// and it needs no lock. Its id turns negative (every reader of the registry skips such a node). Then someone takes
    /// the registration off the count, exactly once: a holder of the registry lock, which sweeps released nodes and
    /// acknowledges them in one swap of the count (<see cref="SweepLocked"/>), or, once anyone waits for the count
    /// (a close, <see cref="WaitAsync"/>, <see cref="Count"/>), the releaser itself. The two race for the node with one
    /// compare-and-swap of its id to zero; ids are never reused, so a node recycled meanwhile cannot be taken by mistake.
    /// </summary>
    private void ReleaseWork(TrackedNode node, long id)
    {
        Debug.Assert(node.Id == id && ReferenceEquals(node.Tracker, this) && node.Kind == TrackedOperationKind.Work, "Work is released once, by its own node.");
        var name = node.Name;
        node.Work = null;
        node.WorkWithHandle = null;
        if (_metrics.Outstanding.Enabled)
        {
            _metrics.Outstanding.Add(-1, _metricTag);
        }

        // A full fence between marking the node and reading the mode: see EnsureEagerRelease for the other side.
        Interlocked.Exchange(ref node.Id, -id);
        var acknowledged = Volatile.Read(ref _releaseMode.Value) != LazyRelease && Interlocked.CompareExchange(ref node.Id, 0, -id) == -id;
        var next = acknowledged ? SubtractOperations(1) : 0; // otherwise a sweep takes it off
        if (_logger.IsEnabled(LogLevel.Debug))
        {
            TaskTrackerLog.Released(_logger, _name, name, id, CountOf(acknowledged ? next : Volatile.Read(ref _hot.State)));
        }

        if (acknowledged)
        {
            OnAcknowledged(next);
        }
    }

    /// <summary>
    /// Makes releases of <c>Go</c> work take themselves off the count from now on, and takes off those released before:
    /// from then on the count is exact. Called by whatever waits for the count (closing, <see cref="WaitAsync"/>, <see cref="Count"/>).
    /// </summary>
    private void EnsureEagerRelease()
    {
        if (Volatile.Read(ref _releaseMode.Value) == EagerRelease)
        {
            return;
        }

        var acknowledged = 0;
        var next = 0L;
        lock (_registry)
        {
            if (_releaseMode.Value != EagerRelease)
            {
                // A full fence between publishing the mode and reading the nodes' ids: a release either sees the mode
                // and acknowledges itself, or has marked its node before the sweep below reads it (or both, and one
                // swap decides). The mode leaves LazyRelease only here, under the lock: see Retire.
                Interlocked.Exchange(ref _releaseMode.Value, Enabling);
                acknowledged = SweepReleasedLocked(out next);
                Volatile.Write(ref _releaseMode.Value, EagerRelease);
            }
        }

        if (acknowledged > 0)
        {
            OnAcknowledged(next);
        }
    }

    /// <summary>
    /// Unlinks every released record, acknowledging those whose releases were not yet counted, and pools them. A
    /// registration sweeps once the registry has doubled since the last sweep (and holds at least
    /// <see cref="MinSweepAt"/> records), so its cost stays O(1) amortized and a long-running operation never makes the
    /// registry grow past twice what is live. The caller holds the registry lock and takes the result off the count.
    /// </summary>
    /// <returns>How many releases this sweep acknowledged.</returns>
    private int SweepLocked()
    {
        var acknowledged = 0;
        TrackedNode? previous = null;
        var node = _hot.Newest;
        while (node is not null)
        {
            var older = node.Next;
            if (Volatile.Read(ref node.Id) <= 0)
            {
                acknowledged += UnlinkLocked(previous, node);
            }
            else
            {
                previous = node;
            }

            node = older;
        }

        _hot.SweepAt = Math.Max(MinSweepAt, 2 * _hot.LiveCount);
        return acknowledged;
    }

    /// <summary>Sweeps (see <see cref="SweepLocked"/>) and takes what it acknowledged off the count; the caller holds the registry lock.</summary>
    /// <returns>How many releases were taken off the count; <paramref name="next"/> is then the state left.</returns>
    private int SweepReleasedLocked(out long next)
    {
        var acknowledged = SweepLocked();
        next = acknowledged > 0 ? SubtractOperations(acknowledged) : 0;
        return acknowledged;
    }

    /// <summary>
    /// Unlinks a released record from the registry and retires it (see <see cref="Retire"/>); <paramref name="newer"/> is
    /// the record linked just before it, or <see langword="null"/> when it is the newest. The caller holds the lock.
    /// </summary>
    private int UnlinkLocked(TrackedNode? newer, TrackedNode node)
    {
        if (newer is null)
        {
            _hot.Newest = node.Next;
        }
        else
        {
            newer.Next = node.Next;
        }

        _hot.LiveCount--;
        return Retire(node);
    }

    /// <summary>
    /// Pools an unlinked, released record, claiming its acknowledgement unless it was already counted (a lease, or work
    /// whose releaser took it). Returns 1 if the caller must take it off the count, else 0. The caller holds the lock.
    /// </summary>
    private int Retire(TrackedNode node)
    {
        var id = Volatile.Read(ref node.Id);
        var acknowledged = 0;
        if (id < 0)
        {
            if (_releaseMode.Value == LazyRelease)
            {
                // No releaser acknowledges itself while the mode is lazy, and the mode leaves it only under this lock:
                // nothing races this write.
                Volatile.Write(ref node.Id, 0);
                acknowledged = 1;
            }
            else if (Interlocked.CompareExchange(ref node.Id, 0, id) == id)
            {
                acknowledged = 1;
            }
        }

        node.Next = null;
        node.StackTrace = null;
        node.WaitingForSlot = false;
        node.HoldsSlot = false;
        node.Tracker = null;
        _hot.Pool.Give(node);
        return acknowledged;
    }

    /// <summary>Takes operations off the count, settling (see <see cref="Settle"/>) in the same swap.</summary>
    private long SubtractOperations(int count)
    {
        var state = Volatile.Read(ref _hot.State);
        while (true)
        {
            var next = Settle(state - (OperationOne * count));
            var seen = Interlocked.CompareExchange(ref _hot.State, next, state);
            if (seen == state)
            {
                return next;
            }

            state = seen;
        }
    }
}
