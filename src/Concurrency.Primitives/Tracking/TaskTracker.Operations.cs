using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives;

public sealed partial class TaskTracker
{
    private const string UnnamedOperation = "(unnamed)";

    // The registry of named registrations: a singly linked list, newest first, guarded by _registry. The operation
    // field of _hot.State goes up only under it; it goes down under it for leases and swept work, and without it for work
    // released once something waits for the count. A released record stays linked, with a negative id (finished
    // work not yet counted) or zero (counted), until a sweep unlinks it (see SweepLocked). Readers skip such records.
    // A registration writes only its own record and the list head: never a neighbour that a pool thread may hold.
    private readonly object _registry = new();
    private List<Exception>? _failures;
    private bool _anyFailure;

    /// <summary>
    /// Raised for every failure of tracked work (also of work started by <c>RunAsync</c>, whose task carries it as well),
    /// on the thread that saw the failure, before the work's registration is released. Handlers run one at a time per
    /// failure, each on its own: one that throws is logged, and the others still run. Never raised under a lock.
    /// </summary>
    public event EventHandler<TrackedWorkFailedEventArgs>? WorkFailed;

    /// <summary>Registers a lease: the count goes up until the lease is disposed.</summary>
    /// <param name="name">A name for <see cref="GetOutstanding"/>, logs and timeout messages.</param>
    /// <returns>The lease; dispose it when the work it stands for is done. Register children through it.</returns>
    /// <remarks>Rejected once the tracker has begun closing; register children through a parent's handle instead.</remarks>
    /// <exception cref="ClosedException">The tracker is closing or has completed.</exception>
    /// <exception cref="ObjectDisposedException">The tracker has been disposed.</exception>
    public TrackedLease Register(string? name = null)
    {
        var node = TryRegister(null, 0, TrackedOperationKind.Lease, name, null, null, out var rejection) ?? throw Rejected(rejection);
        return new TrackedLease(this, node.Node, node.Id);
    }

    /// <summary>
    /// Registers work, then starts it on the thread pool (Go's <c>errgroup.Go</c>); the registration is released when the
    /// work's task completes. Awaiting the result waits for registration and start only; to await the work, use
    /// <see cref="RunAsync(Func{CancellationToken, Task}, string?, CancellationToken)"/>.
    /// </summary>
    /// <param name="work">The work; it receives <see cref="ClosingToken"/>.</param>
    /// <param name="name">A name for <see cref="GetOutstanding"/>, logs and timeout messages.</param>
    /// <param name="cancellationToken">
    /// Cancels only the wait for a concurrency slot (see <see cref="TaskTrackerOptions.MaxConcurrency"/>); the registration is
    /// then withdrawn. Already cancelled: nothing is registered or started.
    /// </param>
    /// <returns>
    /// A task that completes when the work has been registered and started, which is at once unless a concurrency
    /// limit makes it wait for a slot. It does <b>not</b> wait for the work to finish. The work's failure is recorded by
    /// the tracker and thrown by <c>CloseAsync</c>.
    /// </returns>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    /// <exception cref="ClosedException">The tracker is closing or has completed.</exception>
    /// <exception cref="ObjectDisposedException">The tracker has been disposed.</exception>
    public Task Go(Func<CancellationToken, Task> work, string? name = null, CancellationToken cancellationToken = default)
    {
        Internal.Guard.NotNull(work);
        return GoCore(null, 0, work, null, name, observe: false, cancellationToken);
    }

    /// <summary>Registers work that receives its own handle (to register children), then starts it on the thread pool.</summary>
    /// <param name="work">The work; it receives its <see cref="TrackedOperation"/> handle and <see cref="ClosingToken"/>.</param>
    /// <param name="name">A name for <see cref="GetOutstanding"/>, logs and timeout messages.</param>
    /// <param name="cancellationToken">Cancels only the wait for a concurrency slot; the registration is then withdrawn.</param>
    /// <returns>A task that completes when the work has been registered and started (not when it finishes).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    /// <exception cref="ClosedException">The tracker is closing or has completed.</exception>
    /// <exception cref="ObjectDisposedException">The tracker has been disposed.</exception>
    public Task Go(Func<TrackedOperation, CancellationToken, Task> work, string? name = null, CancellationToken cancellationToken = default)
    {
        Internal.Guard.NotNull(work);
        return GoCore(null, 0, null, work, name, observe: false, cancellationToken);
    }

    /// <summary>
    /// Registers work, starts it on the thread pool, and returns the work's own task: <c>Task.Run</c>, tracked. The
    /// registration is released when the work completes; a close waits for it.
    /// </summary>
    /// <param name="work">The work; it receives <see cref="ClosingToken"/>.</param>
    /// <param name="name">A name for <see cref="GetOutstanding"/>, logs and timeout messages.</param>
    /// <param name="cancellationToken">
    /// Cancels only the wait for a concurrency slot (the returned task is then cancelled and the registration withdrawn).
    /// Already cancelled: nothing is registered or started.
    /// </param>
    /// <returns>
    /// A task that completes when the work has finished (and its registration is released), as the work's task did: its
    /// result, its failure or its cancellation. A failure reaches this task only: it is not recorded for <c>CloseAsync</c>
    /// (it is still logged, raised as <see cref="WorkFailed"/>, and may cancel <see cref="ClosingToken"/>).
    /// </returns>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    /// <exception cref="ClosedException">The tracker is closing or has completed.</exception>
    /// <exception cref="ObjectDisposedException">The tracker has been disposed.</exception>
    public Task RunAsync(Func<CancellationToken, Task> work, string? name = null, CancellationToken cancellationToken = default)
    {
        Internal.Guard.NotNull(work);
        return GoCore(null, 0, work, null, name, observe: true, cancellationToken);
    }

    /// <summary>Registers work that receives its own handle, starts it on the thread pool, and returns the work's own task.</summary>
    /// <param name="work">The work; it receives its <see cref="TrackedOperation"/> handle and <see cref="ClosingToken"/>.</param>
    /// <param name="name">A name for <see cref="GetOutstanding"/>, logs and timeout messages.</param>
    /// <param name="cancellationToken">Cancels only the wait for a concurrency slot.</param>
    /// <returns>A task that completes when the work has finished, as the work's task did (see <see cref="RunAsync(Func{CancellationToken, Task}, string?, CancellationToken)"/>).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    /// <exception cref="ClosedException">The tracker is closing or has completed.</exception>
    /// <exception cref="ObjectDisposedException">The tracker has been disposed.</exception>
    public Task RunAsync(Func<TrackedOperation, CancellationToken, Task> work, string? name = null, CancellationToken cancellationToken = default)
    {
        Internal.Guard.NotNull(work);
        return GoCore(null, 0, null, work, name, observe: true, cancellationToken);
    }

    /// <summary>Registers and starts work if the tracker accepts it and, with a concurrency limit, a slot is free.</summary>
    /// <param name="work">The work; it receives <see cref="ClosingToken"/>.</param>
    /// <param name="name">A name for <see cref="GetOutstanding"/>, logs and timeout messages.</param>
    /// <returns><see langword="true"/> if the work was registered and started; <see langword="false"/> if no slot was free or the tracker is closing, completed or disposed.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    public bool TryGo(Func<CancellationToken, Task> work, string? name = null)
    {
        Internal.Guard.NotNull(work);
        return TryGoCore(null, 0, work, null, name);
    }

    /// <summary>Registers and starts work that receives its own handle, if the tracker accepts it and a slot is free.</summary>
    /// <param name="work">The work; it receives its <see cref="TrackedOperation"/> handle and <see cref="ClosingToken"/>.</param>
    /// <param name="name">A name for <see cref="GetOutstanding"/>, logs and timeout messages.</param>
    /// <returns><see langword="true"/> if the work was registered and started.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    public bool TryGo(Func<TrackedOperation, CancellationToken, Task> work, string? name = null)
    {
        Internal.Guard.NotNull(work);
        return TryGoCore(null, 0, null, work, name);
    }

    /// <summary>How many records the registry holds, released ones not yet unlinked included (for tests).</summary>
    internal int RegistryLength
    {
        get
        {
            lock (_registry)
            {
                return _hot.LiveCount;
            }
        }
    }

    /// <summary>Lists the operations from <c>Go</c>, <c>RunAsync</c> and <c>Register</c> outstanding now, oldest first.</summary>
    /// <returns>A copy; anonymous <see cref="Add"/> registrations are not listed (see <see cref="Count"/>).</returns>
    public IReadOnlyList<TrackedOperationInfo> GetOutstanding()
    {
        var now = _clock.Now();
        int acknowledged;
        long next;
        List<TrackedOperationInfo> result;
        lock (_registry)
        {
            acknowledged = SweepReleasedLocked(out next);
            result = new List<TrackedOperationInfo>(_hot.LiveCount);
            for (var node = _hot.Newest; node is not null; node = node.Next)
            {
                var id = Volatile.Read(ref node.Id);
                if (id <= 0)
                {
                    continue; // released since the sweep
                }

                result.Add(new TrackedOperationInfo(
                    id,
                    node.ParentId == 0 ? null : node.ParentId,
                    node.Name,
                    node.Kind,
                    node.WaitingForSlot,
                    _clock.Between(node.RegisteredTimestamp, now),
                    node.StackTrace));
            }
        }

        if (acknowledged > 0)
        {
            OnAcknowledged(next);
        }

        result.Reverse(); // the registry is newest first; ids grow with registration order
        return result;
    }

    /// <summary>
    /// What the tracker holds now: the outstanding operations (as <see cref="GetOutstanding"/>) and the anonymous count.
    /// Its <see cref="TaskTrackerSnapshot.ToString"/> writes the operations as a tree, each child under its parent.
    /// </summary>
    /// <returns>A copy, taken at once.</returns>
    public TaskTrackerSnapshot Snapshot() =>
        new(_name, GetOutstanding(), (int)(Volatile.Read(ref _hot.State) & AnonymousMask));

    internal TrackedLease RegisterChild(TrackedNode parent, long parentId, string? name)
    {
        var node = TryRegister(parent, parentId, TrackedOperationKind.Lease, name, null, null, out var rejection) ?? throw Rejected(rejection);
        return new TrackedLease(this, node.Node, node.Id);
    }

    /// <summary>Registers and starts child work; returns its own task when <paramref name="observe"/> (RunAsync), else a completed one.</summary>
    internal Task GoChild(TrackedNode parent, long parentId, Func<CancellationToken, Task>? work, Func<TrackedOperation, CancellationToken, Task>? workWithHandle, string? name, bool observe) =>
        GoCore(parent, parentId, work, workWithHandle, name, observe, CancellationToken.None);

    internal bool TryGoChild(TrackedNode parent, long parentId, Func<CancellationToken, Task>? work, Func<TrackedOperation, CancellationToken, Task>? workWithHandle, string? name) =>
        TryGoCore(parent, parentId, work, workWithHandle, name);

    internal void ReleaseLease(TrackedNode node, long id) => Release(node, id, TrackedOperationKind.Lease);

    /// <summary>Called once per piece of work, by the work's node, when its task has completed or its delegate threw.</summary>
    internal void CompleteWork(TrackedNode node, Task? task, Exception? exception)
    {
        // The node belongs to this work until Release below; read what we need first.
        var id = node.Id;
        var name = node.Name;
        var observer = node.Observer;
        node.Observer = null;
        IReadOnlyCollection<Exception>? failures = exception is not null ? new[] { exception } : task!.IsFaulted ? task.Exception!.InnerExceptions : null;
        if (failures is not null)
        {
            foreach (var failure in failures)
            {
                RecordFailure(name, id, failure, keep: observer is null);
            }
        }
        else if (task!.IsCanceled)
        {
            TaskTrackerLog.WorkCancelled(_logger, _name, name, id);
        }

        // Free the slot before the count drops, so that waiting work starts before a close can complete.
        if (node.HoldsSlot)
        {
            node.HoldsSlot = false;
            _slots!.Release();
        }

        Release(node, id, TrackedOperationKind.Work);

        // After the release: a caller awaiting RunAsync sees the count without this work.
        if (observer is not null)
        {
            if (failures is not null)
            {
                observer.TrySetException(failures);
            }
            else if (task!.IsCanceled)
            {
                observer.TrySetCanceled();
            }
            else
            {
                observer.TrySetResult(true);
            }
        }
    }

    private Task GoCore(TrackedNode? parent, long parentId, Func<CancellationToken, Task>? work, Func<TrackedOperation, CancellationToken, Task>? workWithHandle, string? name, bool observe, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            // A call cancelled before it begins registers and starts nothing, slot free or not.
            return Task.FromCanceled(cancellationToken);
        }

        var registered = TryRegister(parent, parentId, TrackedOperationKind.Work, name, work, workWithHandle, out var rejection) ?? throw Rejected(rejection);
        var node = registered.Node;
        var observer = observe ? node.Observer = Signals.Create() : null;

        // Only top-level work takes a slot. A child belongs to its running parent's unit of work: making
        // it wait for a slot the parent itself holds would deadlock (errgroup's SetLimit trap).
        if (parent is null && _slots is { } slots)
        {
            if (!TryTakeSlot(slots))
            {
                var started = StartWhenSlotFreeAsync(node, registered.Id, slots, cancellationToken);
                return observer?.Task ?? started;
            }

            node.HoldsSlot = true;
        }

        Start(node);
        return observer?.Task ?? Task.CompletedTask;
    }

    private bool TryGoCore(TrackedNode? parent, long parentId, Func<CancellationToken, Task>? work, Func<TrackedOperation, CancellationToken, Task>? workWithHandle, string? name)
    {
        var slots = parent is null ? _slots : null;
        if (slots is not null && !TryTakeSlot(slots))
        {
            return false;
        }

        if (TryRegister(parent, parentId, TrackedOperationKind.Work, name, work, workWithHandle, out _) is not { } registered)
        {
            slots?.Release();
            return false;
        }

        registered.Node.HoldsSlot = slots is not null;
        Start(registered.Node);
        return true;
    }

#pragma warning disable VSTHRD103, CA2016 // Wait(0) never blocks: it is SemaphoreSlim's try-acquire.
    private static bool TryTakeSlot(SemaphoreSlim slots) => slots.Wait(0);
#pragma warning restore VSTHRD103, CA2016

    private async Task StartWhenSlotFreeAsync(TrackedNode node, long id, SemaphoreSlim slots, CancellationToken cancellationToken)
    {
        node.WaitingForSlot = true;
        try
        {
            await slots.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The work never started: withdraw its registration, then let the caller see the cancellation.
            var observer = node.Observer;
            node.Observer = null;
            Release(node, id, TrackedOperationKind.Work);
            observer?.TrySetCanceled(cancellationToken);
            throw;
        }

        node.WaitingForSlot = false;
        node.HoldsSlot = true;
        Start(node);
    }

    private void Start(TrackedNode node)
    {
        if (_metrics.Started.Enabled)
        {
            _metrics.Started.Add(1, _metricTag);
        }

        node.Start();
    }

    /// <summary>
    /// Records a failure of tracked work: logged, counted, raised as <see cref="WorkFailed"/>, and (when
    /// <paramref name="keep"/>, and fewer than MaxRecordedFailures are kept) kept for <c>CloseAsync</c> and <see cref="Completion"/>.
    /// </summary>
    private void RecordFailure(string name, long id, Exception exception, bool keep = true)
    {
        bool first;
        lock (_registry)
        {
            first = !_anyFailure;
            _anyFailure = true;
            // Past MaxRecordedFailures a failure is not kept; it is still logged, counted and raised below.
            if (keep && (_failures?.Count ?? 0) < _maxRecordedFailures)
            {
                (_failures ??= new List<Exception>()).Add(exception);
            }
        }

        if (keep)
        {
            TaskTrackerLog.WorkFailed(_logger, _name, name, id, exception);
        }
        else
        {
            TaskTrackerLog.RunFailed(_logger, _name, name, id, exception);
        }

        if (_metrics.Faulted.Enabled)
        {
            _metrics.Faulted.Add(1, _metricTag);
        }

        if (WorkFailed is { } handlers)
        {
            IsolatedHandlers.Raise(handlers, this, new TrackedWorkFailedEventArgs(name, id, exception), _logger, _name, TaskTrackerLog.HandlerFailed);
        }

        if (first && _cancelOnFirstFailure)
        {
            CancelStopping();
        }
    }

    [Conditional("DEBUG")]
    private void AssertInvariants()
    {
        Debug.Assert(Monitor.IsEntered(_registry), "The registry lock must be held.");
        var state = Volatile.Read(ref _hot.State);
        Debug.Assert((state & CompleteBit) == 0 || ((state & ClosingBit) != 0 && (state & CountMask) == 0), "Complete implies closing with a count of zero.");
        Debug.Assert((_hot.Newest is null) == (_hot.LiveCount == 0), "The registry is empty exactly when it holds no node.");
    }
}
