using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
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

    private static readonly TimerCallback DelayCallback = static state => ((Batcher<TItem, TResult>)state!).OnDelayElapsed();

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
                results = pending.GetAwaiter().GetResult(); // completed: consumes it, never blocks
            }
        }
        catch (Exception exception)
        {
            fault = exception;
        }

        // Completed asynchronously, on whatever thread finished the dispatch: queue the next batch, never run it here.
        FinishDispatch(core, fault, results)?.Start();
    }

    /// <summary>
    /// Dispatches <paramref name="core"/> and, while dispatches complete synchronously and more batches are due, the
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
    /// Returns the next batch to dispatch, if one is due and a slot is free.
    /// </summary>
    private BatchCore<TItem, TResult>? FinishDispatch(BatchCore<TItem, TResult> core, Exception? fault, IReadOnlyList<TResult>? results)
    {
        var count = core.Count;
        var swept = 0;
        if (fault is not null)
        {
            swept = FailUnanswered(core, fault, resultCount: null);
            BatcherLog.DispatchFailed(_logger, _name, count, swept, fault);
            CountDispatchFault();
        }
        else if (_dispatchList is not null)
        {
            if (results is null || results.Count != count)
            {
                var resultCount = results?.Count ?? 0;
                swept = FailUnanswered(core, fault: null, resultCount);
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
            swept = FailUnanswered(core, fault: null, resultCount: null);
            if (swept > 0)
            {
                BatcherLog.ItemsNotCompleted(_logger, _name, count, swept);
            }
        }

        if (swept > 0 && _metrics.Orphans.Enabled)
        {
            _metrics.Orphans.Add(swept, _metricTag);
        }

        if (_metrics.DispatchDuration.Enabled)
        {
            _metrics.DispatchDuration.Record(_clock.Between(core.DispatchStarted, Now()).TotalSeconds, _metricTag);
        }

        var stuckFor = core.TimedOut ? _clock.Between(core.DispatchStarted, Now()) : (TimeSpan?)null;
        BatchCore<TItem, TResult>? next;
        lock (_lock)
        {
            _inFlight--;
            _running.Remove(core);

            // Out of the running list, the batch is no longer the deadline sweep's: release its items and keep it for
            // the next batch (submits no longer take this lock, so doing it here costs them nothing).
            core.State = BatchCore<TItem, TResult>.Phase.Pooled;
            core.Version++; // before the items go: a late call through a stale Batch is refused
            for (var i = 0; i < count; i++)
            {
                core.Items[i].ReleaseByBatcher();
                core.Items[i] = null!;
            }

            core.Count = 0;
            core.TimedOut = false;
            if (_corePool.Count <= _maxConcurrentBatches)
            {
                _corePool.Push(core);
            }

            next = ServeLocked(holdsDuty: false);
        }

        if (stuckFor is { } stuck)
        {
            BatcherLog.StuckDispatchReturned(_logger, _name, stuck);
        }

        return next;
    }

    /// <summary>
    /// Fails every item the dispatch left unanswered, each with its own exception: the dispatch's fault wrapped, or
    /// "not completed" (with the length of a wrong result list). Returns how many it failed.
    /// </summary>
    private static int FailUnanswered(BatchCore<TItem, TResult> core, Exception? fault, int? resultCount)
    {
        var count = core.Count;
        var swept = 0;
        for (var i = 0; i < count; i++)
        {
            var item = core.Items[i];
            if (!item.IsCompleted && item.TrySetException(fault is not null
                ? new BatchDispatchException(fault, i, count)
                : new BatchItemNotCompletedException(i, count, resultCount)))
            {
                swept++;
            }
        }

        return swept;
    }

    private void CountDispatchFault()
    {
        if (_metrics.DispatchFaults.Enabled)
        {
            _metrics.DispatchFaults.Add(1, _metricTag);
        }
    }

    /// <summary>
    /// Serves the queue, under the lock: takes in the submitted items, starts every due batch while a slot is free, and
    /// arms the timers for what is left. Returns the first batch started, for the caller to run; the others are queued.
    /// </summary>
    /// <remarks>
    /// <para>
    /// Submits push their items without the lock, so someone must be bound to come back for each one. The serve duty says
    /// who: <see cref="SubmitState.Serving"/>, a thread that will look at the stack again before it lets go (a submit
    /// takes it when its item is due, or when the queue is empty and so has no MaxDelay timer armed); <see cref="SubmitState.Parked"/>,
    /// every slot busy, so the next dispatch to finish serves (any serve adopts a parked duty); <see cref="SubmitState.Idle"/>,
    /// no one. A submit pushes, then reads the duty; a serve that lets go writes the duty, then reads the stack (both
    /// with a full fence between): so either the submit sees the duty idle and serves, or the serve sees the item.
    /// </para>
    /// <para>
    /// An item left on the stack while the queue is not empty and not due is taken in by the MaxDelay timer armed for the
    /// queue's head, or by the next serve, whichever comes first; while parked, the sweep looks at least once per
    /// Timeout, so an item left on the stack is still released at its deadline if no dispatch ever finishes.
    /// </para>
    /// </remarks>
    private BatchCore<TItem, TResult>? ServeLocked(bool holdsDuty)
    {
        holdsDuty |= _dutyParked; // a parked duty passes to whoever serves next
        var now = Now();
        BatchCore<TItem, TResult>? first = null;
        while (true)
        {
            // The stack is looked at only when the queue cannot fill a batch: a busy dispatch loop then cuts batch after
            // batch without touching the submits' line (the items on the stack are newer than the whole queue).
            if (_queued < _maxBatchSize || _closing)
            {
                TakeIncomingLocked();
            }

            if (_closing && _shutdownMode == BatcherShutdownMode.FailPending)
            {
                FailQueuedLocked();
            }

            while (TryStartLocked(now) is { } start)
            {
                KeepFirst(ref first, start);
            }

            CheckDrainedLocked();
            if (_inFlight == _maxConcurrentBatches)
            {
                // Every slot busy: the next dispatch to finish serves, so submits need not. Items pushed meanwhile wait
                // on the stack; the sweep takes them in at least once per Timeout, in case no dispatch ever finishes.
                if (holdsDuty)
                {
                    if (!_dutyParked)
                    {
                        Volatile.Write(ref _submit.Duty, SubmitState.Parked);
                        _dutyParked = true;
                    }
                }
                else
                {
                    _dutyParked = Interlocked.CompareExchange(ref _submit.Duty, SubmitState.Parked, SubmitState.Idle) == SubmitState.Idle;
                }

                ArmSweepLocked(now + _timeoutTicks);
                PublishQueueLocked();
                return first;
            }

            // This serve reads the submits' line below anyway. Items the flush puts into the queue (parked ones, and the
            // stack's ahead of them) are served by this loop: no timer is armed for them yet.
            if (FlushCutLocked() > 0)
            {
                continue;
            }

            PublishQueueLocked();

            // Let go (the exchange, or the barrier, orders what this serve wrote before the read of the stack below).
            if (holdsDuty)
            {
                Interlocked.Exchange(ref _submit.Duty, SubmitState.Idle);
                holdsDuty = false;
                _dutyParked = false;
            }
            else
            {
                Interlocked.MemoryBarrier();
            }

            // Items pushed since the take: this serve looks again unless the MaxDelay timer armed for the queue's head
            // covers them (the queue holds items, and neither they nor the admitted count make a batch due).
            if (Volatile.Read(ref _submit.Incoming) is null || (_queued > 0 && !DueByCountLocked()))
            {
                return first;
            }
        }
    }

    /// <summary>Keeps the first batch started for the caller to run, and queues the others to the thread pool.</summary>
    private static void KeepFirst(ref BatchCore<TItem, TResult>? first, BatchCore<TItem, TResult> start)
    {
        if (first is null)
        {
            first = start;
        }
        else
        {
            start.Start();
        }
    }

    /// <summary>Tells submits whether the queue holds items (written only when that changes: submits read the line).</summary>
    private void PublishQueueLocked()
    {
        var held = _queued > 0 ? 1 : 0;
        if (_queueHeldPublished != held)
        {
            Volatile.Write(ref _submit.QueueHeld, held);
            _queueHeldPublished = held;
        }
    }

    /// <summary>Whether the admitted items make a batch due without waiting for MaxDelay; called under the lock.</summary>
    private bool DueByCountLocked() => _maxDelayTicks == 0 || _closing || AdmittedCountLocked >= _maxBatchSize;

    /// <summary>
    /// Takes every submitted item from the stack into the queue, in submit order, then subtracts the cuts not yet counted
    /// (this touches the submits' line anyway), which may move parked items in after them. Called under the lock.
    /// </summary>
    private void TakeIncomingLocked()
    {
        if (Volatile.Read(ref _submit.Incoming) is null)
        {
            return;
        }

        TakeChainLocked();
        FlushCutLocked();
    }

    /// <summary>Takes every submitted item from the stack into the queue, in submit order; called under the lock. Returns how many.</summary>
    private int TakeChainLocked()
    {
        if (Volatile.Read(ref _submit.Incoming) is null)
        {
            return 0;
        }

        // The stack is newest first: reverse the chain into submit order.
        var chain = (BatchItem<TItem, TResult>?)Interlocked.Exchange(ref _submit.Incoming, null);
        BatchItem<TItem, TResult>? oldest = null;
        while (chain is not null)
        {
            var next = chain.NextFree;
            chain.NextFree = oldest;
            oldest = chain;
            chain = next;
        }

        var earliest = long.MaxValue;
        var taken = 0;
        while (oldest is not null)
        {
            var item = oldest;
            oldest = item.NextFree;
            item.NextFree = null;
            AppendLocked(item);
            taken++;
            if (!item.HasOwnDeadline && item.Deadline < earliest)
            {
                earliest = item.Deadline;
            }
        }

        if (_metrics.Queued.Enabled)
        {
            _metrics.Queued.Add(taken, _metricTag);
        }

        if (earliest != long.MaxValue)
        {
            ArmSweepLocked(earliest);
        }

        return taken;
    }

    /// <summary>Appends an admitted item to the queue's tail; called under the lock.</summary>
    private void AppendLocked(BatchItem<TItem, TResult> item)
    {
        if (_queued == _queue.Length)
        {
            GrowQueueLocked();
        }

        _queue[QueueIndex(_queued)] = item;
        _queued++;
    }

    /// <summary>
    /// Cuts the next batch from the head of the queue and hands it to a free dispatch slot, if a batch is due: the queue
    /// holds a full batch, MaxDelay has passed since the head item arrived, MaxDelay is zero, or the batcher is draining.
    /// Otherwise makes sure the MaxDelay timer will fire for the head item. Called under the lock.
    /// </summary>
    private BatchCore<TItem, TResult>? TryStartLocked(long now)
    {
        AssertInvariants();
        while (_inFlight < _maxConcurrentBatches && _queued > 0)
        {
            if (_queued < _maxBatchSize && _maxDelayTicks > 0 && !_closing && now - _queue[_queueHead].Arrival < _maxDelayTicks)
            {
                // Not full and its first item's MaxDelay has not passed: armed once for that item, never restarted.
                ArmDelayLocked(_queue[_queueHead].Arrival + _maxDelayTicks);
                return null;
            }

            var core = TakeCoreLocked();
            var taken = 0;
            var kept = 0;
            while (taken < _maxBatchSize && _queued > 0 && kept < _maxBatchSize)
            {
                var item = _queue[_queueHead];
                _queue[_queueHead] = null!;
                _queueHead = QueueIndex(1);
                _queued--;
                taken++;

                // Leave out items whose callers already gave up (cancelled or timed out before dispatch).
                if (item.IsCompleted)
                {
                    item.ReleaseByBatcher();
                }
                else
                {
                    item.Dispatched = true;
                    core.Uses[kept] = item.Use;
                    core.Items[kept++] = item;
                }
            }

            LeaveQueueLocked(taken);
            if (kept == 0)
            {
                _corePool.Push(core);
                continue;
            }

            core.Count = kept;
            _inFlight++;
            core.State = BatchCore<TItem, TResult>.Phase.Dispatching;
            core.Version++;
            core.TimedOut = false;
            core.DispatchStarted = now;
            core.RentCancellation();
            _running.AddLast(core);

            // The dispatch's bound: its own timeout, or the moment its last caller would give up, whichever is first.
            // The deadline sweep enforces it, so starting a dispatch touches no timer of its own.
            core.DispatchDeadline = Math.Min(now + _dispatchTimeoutTicks, core.Items[kept - 1].Deadline);
            ArmSweepLocked(core.DispatchDeadline);
            if (_metrics.BatchSize.Enabled)
            {
                _metrics.BatchSize.Record(kept, _metricTag);
            }

            return core;
        }

        return null;
    }

    /// <summary>
    /// Counts <paramref name="count"/> items out of the queue (cut into a batch, or failed). The admission count is
    /// lowered at once when callers wait for room or a quarter of the capacity is uncounted; otherwise at the next take
    /// from the stack, when a serve lets go of the duty, or when a submit finds no room. Until then the queue only looks
    /// fuller to submits than it is (a submit may serve, or look for room under the lock, needlessly); whatever reads
    /// the count under the lock (the drain check among them) uses AdmittedCountLocked, which is exact.
    /// </summary>
    private void LeaveQueueLocked(int count)
    {
        _cutUncounted += count;
        if (_metrics.Queued.Enabled)
        {
            _metrics.Queued.Add(-count, _metricTag);
        }

        if (_parked.Count > 0 || _cutUncounted >= _capacity / 4)
        {
            FlushCutLocked();
        }
    }

    /// <summary>
    /// Subtracts the cuts not yet counted from the admission count, and gives the room to the parked items. Returns how
    /// many items it put into the queue (parked ones, and the stack's, taken in ahead of them): a caller about to let
    /// go must serve them, as no timer is armed for them yet.
    /// </summary>
    private int FlushCutLocked()
    {
        if (_cutUncounted != 0)
        {
            Interlocked.Add(ref _submit.Admitted, -_cutUncounted);
            _cutUncounted = 0;
        }

        return _parked.Count == 0 ? 0 : AdmitParkedLocked();
    }

    /// <summary>
    /// Moves parked items into the queue, oldest first, while there is room; skips (and releases) those whose callers gave
    /// up meanwhile. Items already admitted and still on the stack are taken in first: they got their room earlier.
    /// Called under the lock; returns how many items it put into the queue, those from the stack included.
    /// </summary>
    private int AdmitParkedLocked()
    {
        var taken = TakeChainLocked();
        var moved = 0;
        var now = Now();
        while (_parked.Count > 0)
        {
            var node = _parked.Peek();
            if (node.IsCompleted)
            {
                _parked.Dequeue(); // cancelled or timed out while it waited: it never takes room
                node.ReleaseByBatcher();
                continue;
            }

            if (!TryAdmit(out _))
            {
                break;
            }

            _parked.Dequeue();
            node.Arrival = now; // its batch's MaxDelay counts from when it entered the queue
            AppendLocked(node);
            moved++;
        }

        if (_parked.Count == 0)
        {
            Volatile.Write(ref _submit.RoomWaiters, 0);
        }

        if (moved > 0 && _metrics.Queued.Enabled)
        {
            _metrics.Queued.Add(moved, _metricTag);
        }

        return taken + moved;
    }

    /// <summary>Fails every parked item with a fresh exception from <paramref name="exception"/> (at shutdown). Called under the lock.</summary>
    private void FailParkedLocked(Func<Exception> exception)
    {
        while (_parked.Count > 0)
        {
            var node = _parked.Dequeue();
            node.TrySetException(exception());
            node.ReleaseByBatcher();
        }

        Volatile.Write(ref _submit.RoomWaiters, 0);
    }

    private void ArmDelayLocked(long dueAt)
    {
        if (_delayDueAt == dueAt)
        {
            return;
        }

        _delayDueAt = dueAt;
        _delayTimer ??= _time.CreateTimer(DelayCallback, this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _delayTimer.Change(TimerDue(dueAt), Timeout.InfiniteTimeSpan);
    }

    /// <summary>The MaxDelay timer: the head item's batch is due now (if a slot is free; otherwise when one frees).</summary>
    private void OnDelayElapsed()
    {
        BatchCore<TItem, TResult>? start;
        lock (_lock)
        {
            _delayDueAt = long.MaxValue;
            start = ServeLocked(holdsDuty: false);
        }

        start?.Start();
    }

    /// <summary>A pooled batch (the pool keeps at most one more than can run at once), or a new one. Called under the lock.</summary>
    private BatchCore<TItem, TResult> TakeCoreLocked() =>
        _corePool.Count > 0 ? _corePool.Pop() : new BatchCore<TItem, TResult>(this, _maxBatchSize);

    [Conditional("DEBUG")]
    private void AssertInvariants()
    {
        Debug.Assert(Monitor.IsEntered(_lock), "The batcher's lock must be held.");
        Debug.Assert(_inFlight >= 0 && _inFlight <= _maxConcurrentBatches, "At most MaxConcurrency dispatches run.");
        Debug.Assert(_queued >= 0 && _queued <= AdmittedCountLocked && AdmittedCount <= _capacity, "The queue holds only admitted items, and never more than its capacity.");
    }
}
