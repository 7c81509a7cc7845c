using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;

#pragma warning disable VSTHRD002 // GetResult is called only on completed value tasks, to consume them.

namespace Concurrency.Primitives;

public sealed partial class Batcher<TItem, TResult>
{
    private static readonly ContextCallback RunDispatchInContext = static state =>
    {
        var core = (BatchCore<TItem, TResult>)state!;
        core.Owner.RunDispatchCore(core);
    };

    /// <summary>Runs on the thread pool, in the dispatch context (which marks this batcher for re-entrancy checks).</summary>
    internal void RunDispatch(BatchCore<TItem, TResult> core)
    {
        if (_dispatchContext is { } context)
        {
#if NET8_0_OR_GREATER
            ExecutionContext.Run(context, RunDispatchInContext, core);
#else
            ExecutionContext.Run(context.CreateCopy(), RunDispatchInContext, core);
#endif
            return;
        }

        // First dispatch: this work item runs in the default context. Mark it and keep the marked context, so that
        // later dispatches run in it without allocating one each time (the pool resets this thread afterwards).
        DispatchScope.Owner.Value = this;
        _dispatchContext = ExecutionContext.Capture();
        RunDispatchCore(core);
    }

    internal void OnAsyncDispatchCompleted(BatchCore<TItem, TResult> core)
    {
        Exception? fault = null;
        IReadOnlyList<TResult>? results = null;
        try
        {
            if (_dispatch is not null)
            {
                var pending = core.PendingDispatch;
                core.PendingDispatch = default;
                pending.GetAwaiter().GetResult(); // completed: consumes it, never blocks
            }
            else
            {
                var pending = core.PendingResults;
                core.PendingResults = default;
                results = pending.GetAwaiter().GetResult(); // completed: consumes it, never blocks // completed: consumes it, never blocks
            }
        }
        catch (Exception exception)
        {
            fault = exception;
        }

        // Completed asynchronously, on whatever thread finished the dispatch: queue the next batch, never run it here.
        FinishDispatch(core, fault, results)?.Start();
    }

    /// <summary>The core's timer: the MaxDelay trigger of a forming batch (dispatch deadlines are the sweep's).</summary>
    internal void OnBatchTimer(BatchCore<TItem, TResult> core)
    {
        BatchCore<TItem, TResult>? start = null;
        lock (_lock)
        {
            if (core.TimerVersion != core.Version || core.State != BatchCore<TItem, TResult>.Phase.Forming || !ReferenceEquals(core, _forming))
            {
                return; // armed for an earlier phase or an earlier use of this pooled batch
            }

            SealFormingLocked();
            start = TryStartLocked();
        }

        start?.Start();
    }

    /// <summary>
    /// Dispatches <paramref name="core"/> and, while dispatches complete synchronously and more batches are ready, the
    /// next ones, in this one work item: a busy batcher drains its queue without a thread hop per batch.
    /// </summary>
    private void RunDispatchCore(BatchCore<TItem, TResult>? core)
    {
        while (core is not null)
        {
            var token = core.Cancellation?.Token ?? new CancellationToken(canceled: true);
            Exception? fault = null;
            IReadOnlyList<TResult>? results = null;
            try
            {
                if (_dispatch is { } dispatch)
                {
                    var pending = dispatch(new Batch<TItem, TResult>(core, core.Version), token);
                    if (!pending.IsCompleted)
                    {
                        core.PendingDispatch = pending;
                        core.AwaitDispatch();
                        return;
                    }

                    pending.GetAwaiter().GetResult(); // completed: consumes it, never blocks
                }
                else
                {
                    var pending = _dispatchList!(core, token);
                    if (!pending.IsCompleted)
                    {
                        core.PendingResults = pending;
                        core.AwaitResults();
                        return;
                    }

                    results = pending.GetAwaiter().GetResult(); // completed: consumes it, never blocks
                }
            }
            catch (Exception exception)
            {
                fault = exception;
            }

            core = FinishDispatch(core, fault, results);
        }
    }

    /// <summary>
    /// The post-dispatch sweep: every item the dispatch did not answer is answered here, then the batch is recycled.
    /// Returns the next batch to dispatch, if a slot and a batch are ready.
    /// </summary>
    private BatchCore<TItem, TResult>? FinishDispatch(BatchCore<TItem, TResult> core, Exception? fault, IReadOnlyList<TResult>? results)
    {
        var count = core.Count;
        var swept = 0;
        if (fault is not null)
        {
            for (var i = 0; i < count; i++)
            {
                if (!core.Items[i].IsCompleted && core.Items[i].TrySetException(new BatchDispatchException(fault, i, count)))
                {
                    swept++;
                }
            }

            BatcherLog.DispatchFailed(_logger, _name, count, swept, fault);
            CountDispatchFault();
        }
        else if (_dispatchList is not null)
        {
            if (results is null || results.Count != count)
            {
                var resultCount = results?.Count ?? 0;
                for (var i = 0; i < count; i++)
                {
                    if (!core.Items[i].IsCompleted && core.Items[i].TrySetException(new BatchItemNotCompletedException(i, count, resultCount)))
                    {
                        swept++;
                    }
                }

                BatcherLog.ResultCountMismatch(_logger, _name, count, resultCount);
                CountDispatchFault();
            }
            else
            {
                for (var i = 0; i < count; i++)
                {
                    core.Items[i].TrySetResult(results[i]);
                }
            }
        }
        else
        {
            for (var i = 0; i < count; i++)
            {
                if (!core.Items[i].IsCompleted && core.Items[i].TrySetException(new BatchItemNotCompletedException(i, count, resultCount: null)))
                {
                    swept++;
                }
            }

            if (swept > 0)
            {
                BatcherLog.ItemsNotCompleted(_logger, _name, count, swept);
            }
        }

        if (swept > 0 && BatcherMetrics.Orphans.Enabled)
        {
            BatcherMetrics.Orphans.Add(swept, _metricTag);
        }

        if (BatcherMetrics.DispatchDuration.Enabled)
        {
            BatcherMetrics.DispatchDuration.Record(_time.GetElapsedTime(core.DispatchStarted).TotalSeconds, _metricTag);
        }

        var stuckFor = core.TimedOut ? _time.GetElapsedTime(core.DispatchStarted) : (TimeSpan?)null;
        BatchCore<TItem, TResult>? next;
        lock (_lock)
        {
            for (var i = 0; i < count; i++)
            {
                core.Items[i].ReleaseByBatcher();
                core.Items[i] = null!;
            }

            core.Count = 0;
            _inFlight--;
            UnlinkLocked(core);
            ReturnCoreLocked(core);
            next = TryStartLocked();
            CheckDrainedLocked();
        }

        if (stuckFor is { } elapsed)
        {
            BatcherLog.StuckDispatchReturned(_logger, _name, elapsed);
        }

        return next;
    }

    private void CountDispatchFault()
    {
        if (BatcherMetrics.DispatchFaults.Enabled)
        {
            BatcherMetrics.DispatchFaults.Add(1, _metricTag);
        }
    }

    private BatchCore<TItem, TResult> RentCoreLocked()
    {
        var core = _corePool.Count > 0 ? _corePool.Pop() : new BatchCore<TItem, TResult>(this, _maxBatchSize);
        core.State = BatchCore<TItem, TResult>.Phase.Forming;
        core.Version++;
        core.TimedOut = false;

        // Every live batch, oldest first: the deadline sweep walks them in submit order.
        core.Previous = _liveTail;
        core.Next = null;
        if (_liveTail is null)
        {
            _liveHead = core;
        }
        else
        {
            _liveTail.Next = core;
        }

        _liveTail = core;
        return core;
    }

    private void ReturnCoreLocked(BatchCore<TItem, TResult> core)
    {
        // The MaxDelay timer is not disarmed: a late fire finds a new version and is ignored.
        core.State = BatchCore<TItem, TResult>.Phase.Pooled;
        core.Version++;
        core.TimedOut = false;
        if (_corePool.Count < _maxConcurrentBatches + 4)
        {
            _corePool.Push(core);
        }
    }

    private void UnlinkLocked(BatchCore<TItem, TResult> core)
    {
        if (core.Previous is null)
        {
            _liveHead = core.Next;
        }
        else
        {
            core.Previous.Next = core.Next;
        }

        if (core.Next is null)
        {
            _liveTail = core.Previous;
        }
        else
        {
            core.Next.Previous = core.Previous;
        }

        core.Previous = null;
        core.Next = null;
    }

    private void ArmCoreTimerLocked(BatchCore<TItem, TResult> core, TimeSpan due)
    {
        core.TimerVersion = core.Version;
        core.ArmTimer(_time, due);
    }

    private void SealFormingLocked()
    {
        var core = _forming!;
        _forming = null;
        core.State = BatchCore<TItem, TResult>.Phase.Ready;
        core.Version++;
        _ready.Enqueue(core);
    }

    /// <summary>Hands the oldest ready batch to a free dispatch slot, if there is one; called under the lock.</summary>
    private BatchCore<TItem, TResult>? TryStartLocked()
    {
        AssertInvariants();
        while (_inFlight < _maxConcurrentBatches)
        {
            if (_ready.Count == 0)
            {
                if (_maxDelay == TimeSpan.Zero && _forming is not null)
                {
                    // MaxDelay zero: a batch goes as soon as a slot is free; batches form only while none is.
                    SealFormingLocked();
                    continue;
                }

                break;
            }

            var core = _ready.Dequeue();
            _queued -= core.Count;
            if (BatcherMetrics.Queued.Enabled)
            {
                BatcherMetrics.Queued.Add(-core.Count, _metricTag);
            }

            // Leave out items whose callers already gave up (cancelled or timed out before dispatch).
            var kept = 0;
            for (var i = 0; i < core.Count; i++)
            {
                var item = core.Items[i];
                core.Items[i] = null!;
                if (item.IsCompleted)
                {
                    item.ReleaseByBatcher();
                }
                else
                {
                    item.Dispatched = true;
                    core.Items[kept++] = item;
                }
            }

            core.Count = kept;
            WakeRoomWaitersLocked();
            if (kept == 0)
            {
                UnlinkLocked(core);
                ReturnCoreLocked(core);
                continue;
            }

            _inFlight++;
            core.State = BatchCore<TItem, TResult>.Phase.Dispatching;
            core.Version++;
            core.DispatchStarted = _time.GetTimestamp();
            core.RentCancellation();

            // The dispatch's bound: its own timeout, or the moment its last caller would give up, whichever is first.
            // The deadline sweep enforces it, so starting a dispatch touches no timer of its own.
            var lastCaller = core.Items[kept - 1].Deadline;
            core.DispatchDeadline = Math.Min(core.DispatchStarted + _dispatchTimeoutTicks, lastCaller);
            ArmSweepLocked(core.DispatchDeadline);
            if (BatcherMetrics.BatchSize.Enabled)
            {
                BatcherMetrics.BatchSize.Record(kept, _metricTag);
            }

            return core;
        }

        return null;
    }

    private void WakeRoomWaitersLocked()
    {
        var room = _capacity - _queued;
        while (room > 0 && _roomWaiters.Count > 0)
        {
            if (_roomWaiters.Dequeue().TrySetResult(true))
            {
                room--;
            }
        }
    }

    [Conditional("DEBUG")]
    private void AssertInvariants()
    {
        Debug.Assert(Monitor.IsEntered(_lock), "The batcher's lock must be held.");
        Debug.Assert(_inFlight >= 0 && _inFlight <= _maxConcurrentBatches, "At most MaxConcurrentBatches dispatches run.");
        Debug.Assert(_queued >= 0 && _queued <= _capacity, "The queue never exceeds its capacity.");
        Debug.Assert(_forming is null || _forming.Count < _maxBatchSize, "A full batch is sealed at once.");
    }
}
