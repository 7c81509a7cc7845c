using System;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Threading;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary>
/// The watchdog (<see cref="TaskTrackerOptions.LongRunningThreshold"/>): one timer per tracker, armed by a registration
/// that finds it idle and re-armed by its own callback for the oldest registration not yet reported. A registration pays
/// one flag read under the registry lock it already holds; only a report allocates.
/// </summary>
public sealed partial class TaskTracker
{
    private readonly TimeSpan _longRunningThreshold;
    private readonly long _longRunningTicks;

    // Disposed when the tracker completes (see CompleteTerminal): nothing is outstanding then, and nothing can register.
    [SuppressMessage("Usage", "CA2213:Disposable fields should be disposed", Justification = "Disposed when the tracker completes.")]
    private readonly ITimer? _watchdog;
    private bool _watchdogArmed; // guarded by _registry

    /// <summary>
    /// Raised once for each operation still outstanding <see cref="TaskTrackerOptions.LongRunningThreshold"/> after its
    /// registration, while it still runs: on the tracker's timer thread, never under a lock. Handlers run one at a time,
    /// each on its own: one that throws is logged, and the others still run.
    /// </summary>
    public event EventHandler<TrackedOperationLongRunningEventArgs>? LongRunning;

    private void OnWatchdog()
    {
        if (IsCompleted)
        {
            return;
        }

        var now = _clock.Now();
        var nextDue = long.MaxValue;
        List<(TrackedOperationInfo Operation, long ParentId)>? due = null;
        Dictionary<long, string>? parentNames = null;
        lock (_registry)
        {
            for (var node = _hot.Newest; node is not null; node = node.Next)
            {
                var id = Volatile.Read(ref node.Id);
                if (id <= 0 || node.LongRunningReported)
                {
                    continue; // released, or reported already
                }

                var dueAt = node.RegisteredTimestamp + _longRunningTicks;
                if (dueAt > now)
                {
                    nextDue = Math.Min(nextDue, dueAt);
                    continue;
                }

                node.LongRunningReported = true;
                (due ??= new()).Add((Describe(node, id, now), node.ParentId));
            }

            if (due is not null)
            {
                // The parents' names, while their records are still readable.
                parentNames = new Dictionary<long, string>();
                foreach (var (_, parentId) in due)
                {
                    for (var node = _hot.Newest; parentId != 0 && node is not null && !parentNames.ContainsKey(parentId); node = node.Next)
                    {
                        if (Volatile.Read(ref node.Id) == parentId)
                        {
                            parentNames.Add(parentId, node.Name);
                        }
                    }
                }
            }

            // Idle once nothing unreported is outstanding: the next registration arms it again.
            _watchdogArmed = nextDue != long.MaxValue;
        }

        if (nextDue != long.MaxValue)
        {
            try
            {
                _watchdog!.Change(_clock.Between(now, nextDue), Timeout.InfiniteTimeSpan);
            }
            catch (ObjectDisposedException)
            {
                // The tracker completed since the walk above (its last operations finished): nothing is left to watch.
            }
        }

        if (due is not null)
        {
            foreach (var (operation, parentId) in due)
            {
                ReportLongRunning(operation, parentId == 0 ? null : parentNames!.TryGetValue(parentId, out var name) ? name : null);
            }
        }
    }

    private TrackedOperationInfo Describe(TrackedNode node, long id, long now) => new(
        id,
        node.ParentId == 0 ? null : node.ParentId,
        node.Name,
        node.Kind,
        node.WaitingForSlot,
        _clock.Between(node.RegisteredTimestamp, now),
        node.StackTrace);

    private void ReportLongRunning(TrackedOperationInfo operation, string? parentName)
    {
        var parent = operation.ParentId is { } parentId
            ? string.Format(CultureInfo.InvariantCulture, "'{0}' #{1}", parentName ?? "(finished)", parentId)
            : "none";
        try
        {
            TaskTrackerLog.LongRunning(
                _logger,
                _name,
                operation.Name,
                operation.Id,
                operation.Age,
                _longRunningThreshold,
                parent,
                operation.RegistrationStackTrace ?? "not captured (TaskTrackerOptions.CaptureRegistrationStackTraces)");
            if (_metrics.LongRunning.Enabled)
            {
                _metrics.LongRunning.Add(1, _metricTag);
            }
        }
        catch (Exception)
        {
            // A logger or a metric listener that throws must not end the process from a timer thread; the event below
            // still reports the operation.
        }

        if (LongRunning is { } handlers)
        {
            var args = new TrackedOperationLongRunningEventArgs(operation, parentName, _longRunningThreshold);
            IsolatedHandlers.Raise(handlers, this, args, _logger, _name, TaskTrackerLog.LongRunningHandlerFailed);
        }
    }
}

/// <summary>Describes an operation that has been outstanding longer than <see cref="TaskTrackerOptions.LongRunningThreshold"/>.</summary>
public sealed class TrackedOperationLongRunningEventArgs : EventArgs
{
    /// <summary>Creates the description of a long-running operation (the tracker raises these; a test of a handler may build one).</summary>
    /// <param name="operation">The operation, as it was when reported.</param>
    /// <param name="parentName">The name of the operation that registered it, if it has a parent still outstanding.</param>
    /// <param name="threshold">The threshold it passed.</param>
    /// <exception cref="ArgumentNullException"><paramref name="operation"/> is <see langword="null"/>.</exception>
    public TrackedOperationLongRunningEventArgs(TrackedOperationInfo operation, string? parentName, TimeSpan threshold)
    {
        Operation = Internal.Guard.NotNull(operation);
        ParentName = parentName;
        Threshold = threshold;
    }

    /// <summary>The operation: its name, id, parent id, age and (when captured) registration site.</summary>
    public TrackedOperationInfo Operation { get; }

    /// <summary>The name of the operation that registered it, while that one is outstanding; otherwise <see langword="null"/>.</summary>
    public string? ParentName { get; }

    /// <summary>The threshold it passed (<see cref="TaskTrackerOptions.LongRunningThreshold"/>).</summary>
    public TimeSpan Threshold { get; }
}
