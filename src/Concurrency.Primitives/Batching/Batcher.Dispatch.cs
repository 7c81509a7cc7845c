using System;
using System.Collections.Generic;
using System.Threading;
using Concurrency.Primitives.Internal;

#pragma warning disable VSTHRD002 // GetResult is called only on completed value tasks, to consume them.

namespace Concurrency.Primitives;

public sealed partial class Batcher<TItem, TResult>
{
    private static readonly ContextCallback RunLoopInContext = static state =>
    {
        var core = (BatchCore<TItem, TResult>)state!;
        core.Owner.RunLoopCore(core);
    };

    private static readonly TimerCallback DelayCallback = static state => ((Batcher<TItem, TResult>)state!).OnDelayElapsed();

    private long _delayDueAt = long.MaxValue;

    /// <summary>Runs on the thread pool, in the dispatch context (which marks this batcher for re-entrancy checks).</summary>
    internal void RunLoop(BatchCore<TItem, TResult> core)
    {
        if (_dispatchContext is { } context)
        {
#if NET8_0_OR_GREATER
            ExecutionContext.Run(context, RunLoopInContext, core);
#else
            ExecutionContext.Run(context.CreateCopy(), RunLoopInContext, core);
#endif
            return;
        }

        // First loop: this work item runs in the default context. Mark it and keep the marked context, so that later
        // loops run in it without allocating one each time (the pool resets this thread afterwards).
        DispatchScope.Owner.Value = this;
        _dispatchContext = ExecutionContext.Capture();
        RunLoopCore(core);
    }

    /// <summary>
    /// A dispatch loop: cuts the next due batch from the ring's head and dispatches it, batch after batch, in this one
    /// work item while dispatches complete synchronously; an asynchronous dispatch resumes the loop when it completes.
    /// When no batch is due the loop leaves, then looks once more (see <see cref="LeaveLoop"/>).
    /// </summary>
    private void RunLoopCore(BatchCore<TItem, TResult> core)
    {
        while (true)
        {
            if (core.Count == 0 && !TryCut(core)) // a loop started by a submit may hold its first batch already
            {
                if (LeaveLoop(core))
                {
                    return;
                }

                continue;
            }

            if (!Dispatch(core))
            {
                return; // asynchronous: OnAsyncDispatchCompleted finishes the batch and resumes the loop
            }
        }
    }

    /// <summary>
    /// Cuts the next batch into <paramref name="core"/>, if one is due: the ring holds a full batch, MaxDelay has passed
    /// since its first item arrived, MaxDelay is zero, or the batcher is draining. Otherwise arms the MaxDelay timer for
    /// the head item and returns <see langword="false"/>. Items whose callers gave up are left out (and released).
    /// </summary>
    private bool TryCut(BatchCore<TItem, TResult> core)
    {
        var spinner = default(SpinWait);
        while (true)
        {
            var head = Volatile.Read(ref _cut.Head);
            if ((head & SubmitState.Resizing) != 0)
            {
                spinner.SpinOnce(); // the ring grows, under the lock; it takes no longer than copying the queue
                continue;
            }

            var available = ClaimedIndex - head;
            if (available <= 0)
            {
                return false;
            }

            var ring = Volatile.Read(ref _ring);
            var first = PublishedAt(ring, head);
            if (first is null)
            {
                spinner.SpinOnce(); // its submit has claimed the index and is about to publish the item (or a later lap's is there: the head moved)
                continue;
            }

            var count = (int)Math.Min(available, _maxBatchSize);
            if (count < _maxBatchSize && _maxDelayTicks != 0 && !_closing)
            {
                var dueAt = first.Arrival + _maxDelayTicks;
                if (Now() < dueAt && Volatile.Read(ref _cut.Head) == head)
                {
                    // Not full and its first item's MaxDelay has not passed: armed once for that item, never restarted.
                    ArmDelay(dueAt);
                    return false;
                }
            }

            // The run's published prefix, read into the batch before the claim (after it, a later lap may overwrite the
            // cells): a submit between its claim and its publish ends the run. What is read here is stale only if
            // another loop cuts the run first, and then the claim below fails.
            var items = core.Items;
            items[0] = first;
            var published = 1;
            while (published < count && PublishedAt(ring, head + published) is { } next)
            {
                items[published++] = next;
            }

            // The dispatch's bound, from the last item (the sweep reads it after its own fence: see SweepDeadlines).
            var now = Now();
            var deadline = _timeoutTicks == NeverTicks && _dispatchTimeoutTicks == NeverTicks
                ? NeverTicks
                : Math.Min(now + _dispatchTimeoutTicks, items[published - 1].Deadline);
            Volatile.Write(ref core.ActiveDeadline, deadline);
            if (Interlocked.CompareExchange(ref _cut.Head, head + published, head) != head)
            {
                continue; // another loop cut it, or the ring began to grow
            }

            // The claim's fence orders this read of the room-waiter flag after the parkers' (see SubmitSlow).
            var roomWaiters = Volatile.Read(ref _submit.RoomWaiters) != 0;
            var kept = 0;
            for (var i = 0; i < published; i++)
            {
                var item = items[i];

                // Leave out items whose callers already gave up (cancelled or timed out before dispatch).
                if (item.IsCompleted)
                {
                    item.ReleaseByBatcher();
                }
                else
                {
                    item.Dispatched = true;
                    core.Uses[kept] = item.Use;
                    items[kept++] = item;
                }
            }

            for (var i = kept; i < published; i++)
            {
                items[i] = null!;
            }

            if (_metrics.Queued.Enabled)
            {
                _metrics.Queued.Add(-published, _metricTag);
            }

            if (roomWaiters)
            {
                AdmitParked();
            }

            if (kept == 0)
            {
                Volatile.Write(ref core.ActiveDeadline, long.MaxValue);
                continue;
            }

            core.DispatchStarted = now;
            core.Count = kept;
            if (deadline < Volatile.Read(ref _sweepDueAt))
            {
                lock (_lock)
                {
                    ArmSweepLocked(deadline);
                }
            }

            return true;
        }
    }

    /// <summary>
    /// Runs the dispatch of the batch cut into <paramref name="core"/>. Returns <see langword="true"/> once it has
    /// completed and the batch is finished; <see langword="false"/> if it is still running asynchronously.
    /// </summary>
    private bool Dispatch(BatchCore<TItem, TResult> core)
    {
        var token = core.RentCancellation().Token;
        core.State = BatchCore<TItem, TResult>.Phase.Dispatching;
        core.Version++;
        Volatile.Write(ref core.SweepPhase, BatchCore<TItem, TResult>.Dispatching);
        if (_metrics.BatchSize.Enabled)
        {
            _metrics.BatchSize.Record(core.Count, _metricTag);
        }

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
                    return false;
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
                    return false;
                }

                results = pending.GetAwaiter().GetResult(); // completed: consumes it, never blocks
            }
        }
        catch (Exception exception)
        {
            fault = exception;
        }

        FinishDispatch(core, fault, results);
        return true;
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

        // Completed asynchronously, on whatever thread finished the dispatch: resume the loop on the pool, never here.
        FinishDispatch(core, fault, results);
        core.Start();
    }

    /// <summary>
    /// The post-dispatch sweep: every item the dispatch did not answer is answered here; then the batch leaves its
    /// dispatch phase (waiting out a deadline sweep that is looking at it) and its items are released.
    /// </summary>
    private void FinishDispatch(BatchCore<TItem, TResult> core, Exception? fault, IReadOnlyList<TResult>? results)
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
                    core.Items[i].TrySetResult(core.Uses[i], results[i]);
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

        // Leave the dispatch phase. A sweep looking at the batch holds it briefly (under the lock, no user code); one
        // that timed the dispatch out has taken its token source (it cancels it) and released its callers.
        var timedOut = false;
        var spinner = default(SpinWait);
        while (true)
        {
            var phase = Interlocked.CompareExchange(ref core.SweepPhase, BatchCore<TItem, TResult>.Idle, BatchCore<TItem, TResult>.Dispatching);
            if (phase == BatchCore<TItem, TResult>.Dispatching)
            {
                break;
            }

            if (phase == BatchCore<TItem, TResult>.TimedOut)
            {
                timedOut = true;
                core.Cancellation = null; // the sweep's now: it was cancelled, and is never reused
                Volatile.Write(ref core.SweepPhase, BatchCore<TItem, TResult>.Idle);
                break;
            }

            spinner.SpinOnce(); // Sweeping
        }

        core.State = BatchCore<TItem, TResult>.Phase.Pooled;
        core.Version++; // before the items go: a late call through a stale Batch is refused
        for (var i = 0; i < count; i++)
        {
            core.Items[i].ReleaseByBatcher();
            core.Items[i] = null!;
        }

        core.Count = 0;
        Volatile.Write(ref core.ActiveDeadline, long.MaxValue);
        if (timedOut)
        {
            BatcherLog.StuckDispatchReturned(_logger, _name, _clock.Between(core.DispatchStarted, Now()));
        }
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
            if (!item.IsCompleted && item.TrySetException(core.Uses[i], fault is not null
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
    /// From a submit: starts a dispatch loop if fewer than MaxConcurrency run, and cuts its first batch here, at once, so
    /// that the room it leaves is there for the next submit; the loop then runs on the thread pool.
    /// </summary>
    private void StartLoopWithCut()
    {
        if (TryTakeLoopSlot() is not { } core)
        {
            return;
        }

        if (TryCut(core) || !LeaveLoop(core))
        {
            core.Start();
        }
    }

    /// <summary>Starts a dispatch loop if fewer than MaxConcurrency run: takes a slot, then a free core, and queues it.</summary>
    private void TryStartLoop()
    {
        if (TryTakeLoopSlot() is { } core)
        {
            core.Start();
        }
    }

    /// <summary>Counts one more running loop, unless MaxConcurrency already run, and binds it to a free core.</summary>
    private BatchCore<TItem, TResult>? TryTakeLoopSlot()
    {
        if (!TryCountLoop())
        {
            return null;
        }

        // A slot is held, so a free core exists (at most one core per slot is busy).
        while (true)
        {
            for (var i = 0; i < _cores.Length; i++)
            {
                var core = Volatile.Read(ref _cores[i]);
                if (core is null)
                {
                    var created = new BatchCore<TItem, TResult>(this, _maxBatchSize) { Busy = 1 };
                    if (Interlocked.CompareExchange(ref _cores[i], created, null) is null)
                    {
                        return created;
                    }

                    core = Volatile.Read(ref _cores[i])!;
                }

                if (Volatile.Read(ref core.Busy) == 0 && Interlocked.CompareExchange(ref core.Busy, 1, 0) == 0)
                {
                    return core;
                }
            }
        }
    }

    /// <summary>
    /// A loop that found no due batch lets go of its slot, then looks once more: a submit claims, then reads the loop
    /// count; the loop lets go, then reads the claim word; each with a full fence between, so one of them sees the other
    /// and the item is never left without a loop. Returns <see langword="true"/> when the loop is over.
    /// </summary>
    private bool LeaveLoop(BatchCore<TItem, TResult> core)
    {
        Volatile.Write(ref core.Busy, 0);
        Interlocked.Decrement(ref _submit.Loops);
        if (Volatile.Read(ref _submit.RoomWaiters) != 0)
        {
            AdmitParked();
        }

        if (_closing)
        {
            lock (_lock)
            {
                CheckDrainedLocked();
            }
        }

        return !IsCutDue() || !TryRetake(core);
    }

    /// <summary>Takes a loop slot back for <paramref name="core"/>, unless MaxConcurrency loops already run.</summary>
    private bool TryRetake(BatchCore<TItem, TResult> core)
    {
        if (!TryCountLoop())
        {
            return false;
        }

        if (Interlocked.CompareExchange(ref core.Busy, 1, 0) == 0)
        {
            return true;
        }

        // A starting loop took this core meanwhile: it does the work; give the slot back.
        Interlocked.Decrement(ref _submit.Loops);
        return false;
    }

    /// <summary>Counts one more running loop, unless MaxConcurrency already run.</summary>
    private bool TryCountLoop()
    {
        var running = Volatile.Read(ref _submit.Loops);
        while (running < _maxConcurrentBatches)
        {
            var seen = Interlocked.CompareExchange(ref _submit.Loops, running + 1, running);
            if (seen == running)
            {
                return true;
            }

            running = seen;
        }

        return false;
    }

    /// <summary>Whether a loop has work now: claimed items not yet cut, due (by count, MaxDelay zero, or draining) or not yet covered by the delay timer.</summary>
    private bool IsCutDue()
    {
        var head = CutIndex;
        var available = ClaimedIndex - head;
        return available > 0
            && (_maxDelayTicks == 0 || _closing || available >= _maxBatchSize || Volatile.Read(ref _delayDueAt) == long.MaxValue);
    }

    /// <summary>Arms the MaxDelay timer for the head item's batch, if it is not armed for that time or sooner.</summary>
    private void ArmDelay(long dueAt)
    {
        if (Volatile.Read(ref _delayDueAt) <= dueAt)
        {
            return;
        }

        lock (_lock)
        {
            ArmDelayLocked(dueAt);
        }
    }

    /// <summary>After a submit that found the timer unarmed: arms it for the head item (published), or this item's arrival.</summary>
    private void ArmDelayForHead(long arrival)
    {
        lock (_lock)
        {
            ArmDelayForHeadLocked(arrival);
        }
    }

    /// <summary>Arms the MaxDelay timer for the head item (published), or for <paramref name="arrival"/> if it arrived sooner or is not published yet. Called under the lock.</summary>
    private void ArmDelayForHeadLocked(long arrival)
    {
        var head = CutIndex;
        var first = ClaimedIndex > head ? PublishedAt(_ring, head) : null;
        ArmDelayLocked((first is null ? arrival : Math.Min(first.Arrival, arrival)) + _maxDelayTicks);
    }

    private void ArmDelayLocked(long dueAt)
    {
        if (_delayDueAt <= dueAt || _drained.Task.IsCompleted)
        {
            return;
        }

        Volatile.Write(ref _delayDueAt, dueAt);
        _delayTimer ??= _time.CreateTimer(DelayCallback, this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _delayTimer.Change(TimerDue(dueAt), Timeout.InfiniteTimeSpan);
    }

    /// <summary>The MaxDelay timer: the head item's batch may be due now; a loop looks (if a slot is free; otherwise a running loop will).</summary>
    private void OnDelayElapsed()
    {
        lock (_lock)
        {
            Volatile.Write(ref _delayDueAt, long.MaxValue);
        }

        Interlocked.MemoryBarrier();
        if (ClaimedIndex > CutIndex)
        {
            TryStartLoop();
        }
    }

    /// <summary>Gives room to the callers waiting for it (after a cut), under the lock.</summary>
    private void AdmitParked()
    {
        lock (_lock)
        {
            AdmitParkedLocked();
        }
    }

    /// <summary>
    /// Moves parked items into the ring, oldest first, while there is room; skips (and releases) those whose callers
    /// gave up meanwhile. Called under the lock. The items moved in are served as a submit's are.
    /// </summary>
    private void AdmitParkedLocked()
    {
        var now = Now();
        var moved = false;
        while (_parked.Count > 0)
        {
            var node = _parked.Peek();
            if (node.IsCompleted)
            {
                _parked.Dequeue(); // cancelled or timed out while it waited: it never takes room
                node.ReleaseByBatcher();
                continue;
            }

            if (_closing || !TryClaimLocked(out var index))
            {
                break;
            }

            _parked.Dequeue();
            node.Arrival = now; // its batch's MaxDelay counts from when it entered the queue
            Publish(index, node);
            moved = true;
        }

        if (_parked.Count == 0)
        {
            Volatile.Write(ref _submit.RoomWaiters, 0);
        }

        if (moved)
        {
            // Parked items keep their own deadline timers: only the loops and the delay timer need to know.
            Interlocked.MemoryBarrier();
            if (_maxDelayTicks == 0 || ClaimedIndex - CutIndex >= _maxBatchSize)
            {
                TryStartLoop();
            }
            else
            {
                ArmDelayForHeadLocked(now);
                if (Volatile.Read(ref _submit.Loops) == 0)
                {
                    TryStartLoop(); // it arms nothing new if the batch is not due, and cuts it if it is
                }
            }
        }
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

    /// <summary>How many dispatches run now (a snapshot, for logs).</summary>
    private int DispatchingCount()
    {
        var running = 0;
        foreach (var core in _cores)
        {
            if (core is not null && Volatile.Read(ref core.ActiveDeadline) != long.MaxValue)
            {
                running++;
            }
        }

        return running;
    }
}
