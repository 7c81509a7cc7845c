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

    /// <summary>
    /// How many single-item dispatches in a row, after one of several items, it takes before a loop started by a submit
    /// is queued to the submitting worker again (see <see cref="SubmitState.Wide"/>).
    /// </summary>
    private const int WideRun = 8;

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

            // The run's published prefix, read into the batch before the claim (after it, a later lap may overwrite the
            // cells): a submit between its claim and its publish ends the run. What is read here is stale only if
            // another loop cuts the run first, and then the claim below fails. A cell is published only after its index
            // was claimed, so a published run is due without a look at the claim word (the submits' cache line, which a
            // loop cutting batch after batch would otherwise take from them once per batch) when it is full or MaxDelay
            // cannot hold it back; the word is read when nothing is published (claimed, or not) or MaxDelay may apply.
            var ring = Volatile.Read(ref _ring);
            var items = core.Items;
            var published = 0;
            while (published < _maxBatchSize && PublishedAt(ring, head + published) is { } next)
            {
                items[published++] = next;
            }

            if (published == 0 || (published < _maxBatchSize && _maxDelayTicks != 0 && !_closing))
            {
                var available = ClaimedIndex - head;
                if (available <= 0)
                {
                    return false;
                }

                if (published == 0)
                {
                    spinner.SpinOnce(); // its submit has claimed the index and is about to publish the item (or a later lap's is there: the head moved)
                    continue;
                }

                // A partial run that MaxDelay may hold back (the test above): held only while fewer than a batch are claimed.
                if (available < _maxBatchSize)
                {
                    var dueAt = items[0].Arrival + _maxDelayTicks;
                    if (Now() < dueAt && Volatile.Read(ref _cut.Head) == head)
                    {
                        // Not full and its first item's MaxDelay has not passed: armed once for that item, never restarted.
                        // (The references read into the batch stay until the next cut overwrites them: items are pooled,
                        // and nothing reads a batch's cells past its count.)
                        ArmDelay(dueAt);
                        return false;
                    }
                }
            }

            // The dispatch's bound, from the last item (the sweep reads it after its own fence: see SweepDeadlines).
            var now = Now();
            var deadline = _timeoutTicks == NeverTicks && _dispatchTimeoutTicks == NeverTicks
                ? NeverTicks
                : Math.Min(now + _dispatchTimeoutTicks, LatestBound(items[published - 1].Deadline, now));
            Volatile.Write(ref core.ActiveDeadline, deadline);
            if (Interlocked.CompareExchange(ref _cut.Head, head + published, head) != head)
            {
                continue; // another loop cut it, or the ring began to grow
            }

            // The claim's fence orders this read of the room-waiter flag after the parkers' (see SubmitSlow), and the look
            // at each item's answer below after the head moved past it: a deadline claims an item's answer, then reads the
            // head to tell its caller whether the item was dispatched (see BatchItem.TryTimeOut); one of the two sees the
            // other.
            var roomWaiters = Volatile.Read(ref _submit.RoomWaiters) != 0;
            var kept = 0;
            var canGiveUp = false;
            for (var i = 0; i < published; i++)
            {
                var item = items[i];

                // Leave out items whose callers already gave up (cancelled or timed out before dispatch).
                var use = item.PendingUse;
                if (use == BatchItem<TItem, TResult>.Answered)
                {
                    item.ReleaseByBatcher();
                    continue;
                }

                canGiveUp |= item.CanGiveUp;
                core.Uses[kept] = use;
                core.Values[kept] = item.Value;
                if (kept != i)
                {
                    items[kept] = item;
                }

                kept++;
            }

            var callers = kept;
            if (_comparer is not null)
            {
                kept = Coalesce(core, kept, ref callers);
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
            core.RentCancellation();
            if (canGiveUp)
            {
                Track(core, callers);
            }

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
        // Where the next loop a submit starts is queued (a hint; see SubmitState.Wide), written only when it changes.
        var wide = Volatile.Read(ref _submit.Wide);
        if (core.Count > 1 ? wide != WideRun : wide != 0)
        {
            Volatile.Write(ref _submit.Wide, core.Count > 1 ? WideRun : wide - 1);
        }

        var token = core.Cancellation!.Token;
        core.State = BatchCore<TItem, TResult>.Phase.Dispatching;
        core.Version++;

        // The batch holds its items since the cut: the deadline read is this use's.
        if (_timeoutTicks == NeverTicks || _epochs is not null || core.Items[0].Deadline >= core.ActiveDeadline)
        {
            // No caller deadlines, or the first caller's is not earlier than the batch's bound (a batch of one; callers
            // that read the same clock tick; a dispatch timeout shorter than what is left of theirs): the cut armed the
            // sweep for the bound after its claim's fence, and a sweep that fired while the batch was cut re-armed for
            // it, so nothing here needs arming, and no fence. Where epochs are kept, every arming of the sweep is also
            // within a period of the current epoch's start, so it fires at least once a period while this batch runs and
            // finds its first caller's bound at most a period late (the caller's bound is then two periods late at most).
            Volatile.Write(ref core.SweepPhase, BatchCore<TItem, TResult>.Dispatching);
        }
        else
        {
            // A sweep that fired while this batch was cut could not take it, and re-armed for the batch's bound, which is
            // later than its first caller's deadline (callers are in submit order, which is deadline order). Entering
            // the dispatch phase is a full fence; then, if the sweep is not armed for that deadline or sooner, it is armed
            // for it now (rare: it is armed for the earliest pending deadline).
            Interlocked.Exchange(ref core.SweepPhase, BatchCore<TItem, TResult>.Dispatching);
            var firstDeadline = core.Items[0].Deadline;
            if (Volatile.Read(ref _sweepDueAt) > firstDeadline)
            {
                lock (_lock)
                {
                    ArmSweepLocked(firstDeadline);
                }
            }
        }

        if (core.Tracked && (Volatile.Read(ref core.Live) & BatchCore<TItem, TResult>.LiveCount) == 0)
        {
            FinishDispatch(core, fault: null, results: null, skipped: true); // every caller gave up since the cut: nobody to dispatch for
            return true;
        }

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
    private void FinishDispatch(BatchCore<TItem, TResult> core, Exception? fault, IReadOnlyList<TResult>? results, bool skipped = false)
    {
        var count = core.Count;
        var swept = 0;

        // A tracked batch's count of live callers is closed first: whoever counted the last one gone owns (and cancels)
        // the token source, which is then never reused.
        var abandoned = false;
        if (core.Tracked)
        {
            var live = Volatile.Read(ref core.Live);
            abandoned = (Interlocked.Exchange(ref core.Live, (live & ~BatchCore<TItem, TResult>.LiveCount) | BatchCore<TItem, TResult>.LiveClosed)
                & BatchCore<TItem, TResult>.LiveCount) == 0;
            core.Tracked = false;
        }

        if (skipped)
        {
            // Not dispatched: every caller had given up.
        }
        else if (fault is not null)
        {
            swept = FailUnanswered(core, fault, resultCount: null);
            // A batch the sweep released at its callers' own bounds is abandoned too: its flag is written before the token
            // is cancelled, so a dispatch that ended with that cancellation is seen with it (read only here, off the hot path).
            if ((abandoned || Volatile.Read(ref core.AbandonedBySweep) != 0) && swept == 0 && fault is OperationCanceledException)
            {
                BatcherLog.AbandonedDispatchCancelled(_logger, _name, count);
            }
            else
            {
                BatcherLog.DispatchFailed(_logger, _name, count, swept, fault);
                CountDispatchFault();
            }
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
            else if (core.Coalescing)
            {
                for (var i = 0; i < count; i++)
                {
                    core.TrySetSlotResult(i, results[i]);
                }
            }
            else
            {
                for (var i = 0; i < count; i++)
                {
                    core.Items[i].TrySetResult(core.Uses[i], results[i], releaseBatcher: true);
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
                core.AbandonedBySweep = 0; // the sweep is done with this batch: the next one starts clear
                Volatile.Write(ref core.SweepPhase, BatchCore<TItem, TResult>.Idle);
                break;
            }

            spinner.SpinOnce(); // Sweeping
        }

        if (abandoned)
        {
            core.Cancellation = null; // its canceller's: cancelled (or being cancelled), and never reused
        }

        core.State = BatchCore<TItem, TResult>.Phase.Pooled;
        core.Version++; // before the items go: a late call through a stale Batch is refused
        for (var i = 0; i < count; i++)
        {
            core.Items[i].ReleaseByBatcher(core.Uses[i]); // a dispatch's answer let go already
            core.Items[i] = null!;
        }

        for (var k = 0; k < core.FollowerCount; k++)
        {
            core.Followers![k].ReleaseByBatcher(core.FollowerUses![k]);
            core.Followers[k] = null!;
        }

#if NET8_0_OR_GREATER
        if (System.Runtime.CompilerServices.RuntimeHelpers.IsReferenceOrContainsReferences<TItem>())
#endif
        {
            Array.Clear(core.Values, 0, count);
        }

        core.FollowerCount = 0;
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
            if (core.Coalescing && !core.TryClaimSlot(i))
            {
                continue; // the slot was answered: every caller of it has that answer (or gave up)
            }

            // Each caller of the slot gets its own exception.
            swept += FailIfUnanswered(core.Items[i], core.Uses[i], i, count, fault, resultCount);
            for (var k = core.FirstFollower(i); k >= 0; k = core.FollowerNext![k])
            {
                swept += FailIfUnanswered(core.Followers![k], core.FollowerUses![k], i, count, fault, resultCount);
            }
        }

        return swept;
    }

    private static int FailIfUnanswered(BatchItem<TItem, TResult> item, int use, int index, int count, Exception? fault, int? resultCount) =>
        item.IsPendingIn(use) && item.TrySetException(use, fault is not null
            ? new BatchDispatchException(fault, index, count)
            : new BatchItemNotCompletedException(index, count, resultCount), releaseBatcher: true)
            ? 1
            : 0;

    /// <summary>
    /// Groups the <paramref name="kept"/> items of a batch being cut by the coalescing comparer: the first caller of each
    /// distinct item keeps a slot (in <c>Items</c>, in submit order), later callers of an equal item follow it. An item
    /// the comparer throws on fails with that exception and is left out. Returns the number of slots; lowers
    /// <paramref name="callers"/> by the items left out.
    /// </summary>
    private int Coalesce(BatchCore<TItem, TResult> core, int kept, ref int callers)
    {
        var comparer = _comparer!;
        var items = core.Items;
        var uses = core.Uses;
        var buckets = core.Buckets!;
        var mask = buckets.Length - 1;
        Array.Clear(buckets, 0, buckets.Length);
        var slots = 0;
        var followers = 0;
        for (var i = 0; i < kept; i++)
        {
            var item = items[i];
            var use = uses[i];
            var found = -1;
            int bucket;
            try
            {
                var value = core.Values[i];
                var hash = value is null ? 0 : comparer.GetHashCode(value);
                bucket = (hash ^ (hash >> 16)) & mask;
                while (buckets[bucket] != 0)
                {
                    var slot = buckets[bucket] - 1;
                    var other = core.Values[slot];
                    if (value is null ? other is null : other is not null && comparer.Equals(other, value))
                    {
                        found = slot;
                        break;
                    }

                    bucket = (bucket + 1) & mask;
                }
            }
            catch (Exception exception)
            {
                item.TrySetException(use, exception);
                item.ReleaseByBatcher();
                callers--;
                continue;
            }

            if (found >= 0)
            {
                // Followers of a slot are chained newest first; each keeps its own use.
                core.Followers![followers] = item;
                core.FollowerUses![followers] = use;
                core.FollowerNext![followers] = core.SlotFollowers![found];
                core.SlotFollowers[found] = followers++;
                continue;
            }

            buckets[bucket] = slots + 1;
            items[slots] = item;
            uses[slots] = use;
            core.Values[slots] = core.Values[i];
            core.SlotAnswered![slots] = 0;
            core.SlotFollowers![slots] = -1;
            slots++;
        }

        core.FollowerCount = followers;
        if (followers > 0 && _metrics.Coalesced.Enabled)
        {
            _metrics.Coalesced.Add(followers, _metricTag);
        }

        return slots;
    }

    /// <summary>
    /// Counts the live callers of the batch just cut into <paramref name="core"/>, one of which can give up on its own:
    /// stamps the count word and every caller with a new epoch, then (after a fence) counts those that gave up before they
    /// could see the stamp. Whoever counts the last caller gone cancels the dispatch's token (see <see cref="OnCallerGone"/>).
    /// </summary>
    private void Track(BatchCore<TItem, TResult> core, int callers)
    {
        var epoch = ++core.Epoch & int.MaxValue;
        core.Tracked = true;
        Volatile.Write(ref core.Live, ((long)epoch << 33) | (uint)callers);
        for (var i = 0; i < core.Count; i++)
        {
            Stamp(core.Items[i], core, epoch);
        }

        for (var k = 0; k < core.FollowerCount; k++)
        {
            Stamp(core.Followers![k], core, epoch);
        }

        // A caller that gave up after the cut looked at it, and before it could see the stamp, is counted here.
        Interlocked.MemoryBarrier();
        for (var i = 0; i < core.Count; i++)
        {
            CountIfGone(core.Items[i], core);
        }

        for (var k = 0; k < core.FollowerCount; k++)
        {
            CountIfGone(core.Followers![k], core);
        }

        static void Stamp(BatchItem<TItem, TResult> item, BatchCore<TItem, TResult> core, int epoch)
        {
            item.GoneCounted = 0;
            item.TrackedEpoch = epoch;
            item.TrackIn(core);
        }

        void CountIfGone(BatchItem<TItem, TResult> item, BatchCore<TItem, TResult> core)
        {
            if (item.IsCompleted && CountGone(core, item) is { } cancellation)
            {
                Abandon(cancellation); // nothing is registered on the token yet: the dispatch will not run
            }
        }
    }

    /// <summary>
    /// Counts <paramref name="item"/>'s caller gone from <paramref name="core"/>'s batch (once per use, and only while that
    /// batch is the loop's and not finished). Returns the dispatch's token source when this was its last caller.
    /// </summary>
    private static CancellationTokenSource? CountGone(BatchCore<TItem, TResult> core, BatchItem<TItem, TResult> item)
    {
        if (Interlocked.CompareExchange(ref item.GoneCounted, 1, 0) != 0)
        {
            return null;
        }

        var epoch = item.TrackedEpoch;
        var live = Volatile.Read(ref core.Live);
        while (true)
        {
            if ((int)((ulong)live >> 33) != epoch || (live & BatchCore<TItem, TResult>.LiveClosed) != 0 || (live & BatchCore<TItem, TResult>.LiveCount) == 0)
            {
                return null; // another batch's, or finished
            }

            // Read before the count: while the count word is this batch's and open, the source is this batch's.
            var cancellation = core.Cancellation;
            var seen = Interlocked.CompareExchange(ref core.Live, live - 1, live);
            if (seen == live)
            {
                return (live & BatchCore<TItem, TResult>.LiveCount) == 1 ? cancellation : null;
            }

            live = seen;
        }
    }

    /// <summary>A caller of a cut or running batch gave up on its own (its token, or its own deadline): counted; the last one cancels the dispatch.</summary>
    internal void OnCallerGone(BatchCore<TItem, TResult> core, BatchItem<TItem, TResult> item)
    {
        if (CountGone(core, item) is { } cancellation)
        {
            Abandon(cancellation);
        }
    }

    /// <summary>Every caller of a batch has given up: its dispatch's token is cancelled now, not at its timeout.</summary>
    private void Abandon(CancellationTokenSource cancellation)
    {
        BatcherLog.DispatchAbandoned(_logger, _name);
        if (_metrics.AbandonedDispatches.Enabled)
        {
            _metrics.AbandonedDispatches.Add(1, _metricTag);
        }

        try
        {
            cancellation.Cancel();
        }
        catch (AggregateException)
        {
            // Callbacks on the dispatch token are the dispatch's own; it reports through its task.
        }
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
            // On the submitting worker's own queue the loop would run next, before callers already queued to resume
            // (its queue is last in, first out), and cut this one item alone; behind them while batches are wide.
            core.Start(preferLocal: !QueuesLoopsBehindCallers);
        }
    }

    /// <summary>
    /// Whether a loop started by a submit goes to the pool's shared queue, behind the callers that recent dispatches of
    /// several items answered, rather than to the submitting worker's own queue (see <see cref="SubmitState.Wide"/>).
    /// </summary>
    internal bool QueuesLoopsBehindCallers => Volatile.Read(ref _submit.Wide) != 0;

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
                    var created = new BatchCore<TItem, TResult>(this, _maxBatchSize, _comparer is not null) { Busy = 1 };
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

        CheckDrainedIfClosing();
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

        // A starting loop took this core meanwhile: it does the work; give the slot back. The drain is looked at again:
        // the starting loop may have run its batches and left meanwhile, its own look counting this slot as running.
        Interlocked.Decrement(ref _submit.Loops);
        CheckDrainedIfClosing();
        return false;
    }

    /// <summary>
    /// After a loop gave its slot back: completes the drain if the batcher is closing and nothing is left. The slot's
    /// decrement is a full fence and the close sets its flag before a fenced look at the slots, so one of the two sees the
    /// other.
    /// </summary>
    private void CheckDrainedIfClosing()
    {
        if (_closing)
        {
            lock (_lock)
            {
                CheckDrainedLocked();
            }
        }
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
