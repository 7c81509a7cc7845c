using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

public sealed partial class Batcher<TItem, TResult>
{
    private static readonly TimerCallback SweepCallback = static state => ((Batcher<TItem, TResult>)state!).SweepDeadlines();

    private long _closeBeganAt = Signals.NotBegun;
    private ITimer? _sweepTimer;
    private long _sweepDueAt = long.MaxValue;

    /// <summary>
    /// Closes the batcher: stops accepting items (every later <c>SubmitAsync</c> fails at once with
    /// <see cref="ClosedException"/>), drains or fails the queued items per <see cref="BatcherOptions.ShutdownMode"/>, and
    /// waits up to <see cref="BatcherOptions.ShutdownTimeout"/> for running dispatches.
    /// </summary>
    /// <param name="cancellationToken">Abandons this wait; the shutdown goes on.</param>
    /// <returns>A task that completes when no item is queued and no dispatch runs (as <see cref="Completion"/> does).</returns>
    /// <exception cref="ShutdownTimeoutException">Dispatches were still running when the bound passed (their callers are bounded by their own deadlines).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public Task CloseAsync(CancellationToken cancellationToken = default) => CloseAsync(_shutdownTimeout, cancellationToken);

    /// <summary>Closes the batcher as <see cref="CloseAsync(CancellationToken)"/> does, waiting at most <paramref name="timeout"/>.</summary>
    /// <param name="timeout">How long to wait for the drain and the running dispatches; <see cref="Timeout.InfiniteTimeSpan"/> for no bound.</param>
    /// <param name="cancellationToken">Abandons this wait; the shutdown goes on.</param>
    /// <returns>A task that completes when no item is queued and no dispatch runs.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="ShutdownTimeoutException">Dispatches were still running when the bound passed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public Task CloseAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Guard.Timeout(timeout);
        BeginClose();
        return _drained.Task.IsCompleted ? _drained.Task : WaitForDrainAsync(timeout, cancellationToken);
    }

    /// <summary>
    /// Closes the batcher without waiting: refuses every later submit with <see cref="ObjectDisposedException"/>, begins the
    /// drain, and returns at once. Never blocks and never throws; a drain that outlasts <see cref="BatcherOptions.ShutdownTimeout"/>
    /// is logged at Error. Prefer <see cref="DisposeAsync"/>, which waits for it.
    /// </summary>
    public void Dispose() => _ = DisposeAsync().AsTask();

    /// <summary>
    /// Closes the batcher (as <see cref="CloseAsync(CancellationToken)"/>) and waits up to <see cref="BatcherOptions.ShutdownTimeout"/>,
    /// counted from when the close began (a dispose after a close that timed out does not wait a second full bound), for the drain. Never throws: a drain that does not finish in time is logged at Error (naming how many dispatches
    /// still run), and <see cref="Completion"/> completes when it does. Later submits throw <see cref="ObjectDisposedException"/>.
    /// </summary>
    /// <returns>A task that completes when the batcher has shut down, or the bound has passed.</returns>
    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        try
        {
            BeginClose();
            await CloseAsync(Signals.Remaining(_shutdownTimeout, Volatile.Read(ref _closeBeganAt), _time), CancellationToken.None).ConfigureAwait(false);
        }
        catch (ShutdownTimeoutException timeout)
        {
            BatcherLog.DisposeTimedOut(_logger, _name, timeout);
        }
    }

    private void BeginClose()
    {
        lock (_lock)
        {
            if (_closing)
            {
                return;
            }

            // The flag shares the claim word: every submit after this swap is refused; every one before it has claimed
            // its index, and its item is cut (by a loop started below, or one it starts itself) before the drain ends.
            _closing = true;
            Volatile.Write(ref _closeBeganAt, _time.GetTimestamp());
            SetFlag(ref _submit.Tail, SubmitState.Closing);
            BatcherLog.ShutdownStarted(_logger, _name, _shutdownMode, Count, DispatchingCount());
            FailParkedLocked(ShutDown); // never admitted: they wait for room that will not come
            if (_shutdownMode == BatcherShutdownMode.FailPending)
            {
                FailQueuedLocked();
            }

            CheckDrainedLocked();
        }

        // Drain: a loop cuts every queued item, whatever its MaxDelay.
        Interlocked.MemoryBarrier();
        if (ClaimedIndex > CutIndex)
        {
            TryStartLoop();
        }
    }

    private async Task WaitForDrainAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        // The drain signal never faults: a wait that sees it completed (a bound that passed just as it did included) is a
        // close that finished.
        if (!await Signals.WaitWithinAsync(_drained.Task, timeout, _time, cancellationToken).ConfigureAwait(false))
        {
            var inFlight = DispatchingCount();
            BatcherLog.ShutdownTimedOut(_logger, _name, timeout, inFlight);
            throw new ShutdownTimeoutException(_name, timeout, $"Batcher '{_name}' still had {inFlight} dispatch(es) running after {timeout}; their callers are released by their own deadlines, and the batcher completes when the dispatches return.");
        }
    }

    /// <summary>
    /// Fails every queued item (FailPending): cuts them from the ring as a loop would (racing the loops, each run to
    /// whoever claims it), waiting for items whose submits claimed before the shutdown flag and are about to publish.
    /// Called under the lock.
    /// </summary>
    private void FailQueuedLocked()
    {
        var spinner = default(SpinWait);
        while (true)
        {
            var head = Volatile.Read(ref _cut.Head);
            var tail = ClaimedIndex;
            if (head >= tail)
            {
                return;
            }

            var ring = _ring;
            var published = 0;
            while (head + published < tail && PublishedAt(ring, head + published) is not null)
            {
                published++;
            }

            if (published == 0)
            {
                spinner.SpinOnce(); // claimed before the flag, not yet published
                continue;
            }

            // The claim word is closed, so no later lap can overwrite these cells after the claim.
            if (Interlocked.CompareExchange(ref _cut.Head, head + published, head) != head)
            {
                continue;
            }

            for (var i = 0; i < published; i++)
            {
                var item = PublishedAt(ring, head + i)!;
                item.TrySetException(new ClosedException(
                    _name,
                    $"Batcher '{_name}' closed (ShutdownMode.FailPending) before this item was dispatched; it never will be."));
                item.ReleaseByBatcher();
            }

            if (_metrics.Queued.Enabled)
            {
                _metrics.Queued.Add(-published, _metricTag);
            }
        }
    }

    private void CheckDrainedLocked()
    {
        if (_closing
            && ClaimedIndex == CutIndex
            && Volatile.Read(ref _submit.Loops) == 0
            && _drained.TrySetResult(true))
        {
            // Nothing is left to time out or to batch: let the timers go.
            _sweepTimer?.Dispose();
            _sweepTimer = null;
            Volatile.Write(ref _sweepDueAt, long.MaxValue);
            _delayTimer?.Dispose();
            _delayTimer = null;
            Volatile.Write(ref _delayDueAt, long.MaxValue);
        }
    }

    /// <summary>
    /// Releases <paramref name="item"/> (read from a cell or a batch) if its bound has passed; returns <see langword="true"/>
    /// at the first item still within it. Only its <paramref name="use"/> is answered, and only while the item is in it: a
    /// running batch's item may have been answered by its dispatch, read, recycled and serving a later caller (whose
    /// deadline says nothing about this batch), and a queued item read from a cell may have been cut and recycled too.
    /// </summary>
    private bool ExpireIfDue(BatchItem<TItem, TResult> item, int use, long now, ref long next, ref int released)
    {
        if (!item.IsPendingIn(use) || item.HasOwnDeadline)
        {
            return false;
        }

        var deadline = item.Deadline;
        if (!item.IsPendingIn(use))
        {
            return false; // answered meanwhile: what was read may be a later use's
        }

        // An epoch stamp whose epoch has not ended (the sweep ended the one before this look, if it had lasted half a
        // period) is within its bound: its caller may have arrived this instant.
        deadline = LatestBound(deadline, now);

        if (deadline > now)
        {
            next = Math.Min(next, deadline);
            return true;
        }

        if (item.TryTimeOut(use, _timeout))
        {
            released++;
        }

        return false;
    }

    /// <summary>
    /// Makes sure the sweep fires no later than <paramref name="deadline"/>; called under the lock. Where epochs are kept,
    /// also no later than a period after the current epoch began: while anything is outstanding the sweep then fires at
    /// least once a period, and each fire ends an epoch that has lasted half of one (see <see cref="ClockEpochs"/>). An
    /// epoch that has lasted that long already (nothing was outstanding to make the sweep end it) ends here, so that the
    /// sweep is armed for a period from now rather than at once.
    /// </summary>
    private void ArmSweepLocked(long deadline)
    {
        if (_epochs is { } epochs)
        {
            epochs.AdvanceIfDue(ref _submit.Epoch, Now(), _clock);
            deadline = Math.Min(deadline, epochs.Start(_submit.Epoch) + epochs.Period);
        }

        if (_sweepDueAt <= deadline || deadline >= NeverTicks / 2 || _drained.Task.IsCompleted)
        {
            // Armed for an earlier deadline (the usual case): that fire re-arms for the rest.
            return;
        }

        Volatile.Write(ref _sweepDueAt, deadline);
        _sweepTimer ??= _time.CreateTimer(SweepCallback, this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _sweepTimer.Change(TimerDue(deadline), Timeout.InfiniteTimeSpan);
    }

    /// <summary>
    /// Releases every caller whose bound has passed, and times out every dispatch past its deadline. Running batches are
    /// taken from their loops one at a time (their SweepPhase), and all checked; queued items are walked from the ring's
    /// head in submit order, which is deadline order, so that walk stops at the first item still within its bound. Then
    /// the timer is re-armed for the earliest deadline left.
    /// </summary>
    private void SweepDeadlines()
    {
        var released = 0;
        List<(BatchCore<TItem, TResult> Core, CancellationTokenSource? Cancellation)>? timedOut = null;
        List<CancellationTokenSource>? abandoned = null;
        long now;
        var next = long.MaxValue;
        lock (_lock)
        {
            // Unarmed first, then a full fence, then the look: a submit claims, then reads this field (see AfterPublish),
            // and a loop writes its batch's bound, then claims, then reads it (see TryCut): one of each pair sees the other.
            Volatile.Write(ref _sweepDueAt, long.MaxValue);
            Interlocked.MemoryBarrier();
            now = Now();
            _epochs?.AdvanceIfDue(ref _submit.Epoch, now, _clock);

            // Set when a running batch holds an item still within its bound: every queued item is younger, so within its own.
            var itemsDone = false;

            // Running dispatches first: their items were queued before every item still in the ring.
            foreach (var core in _cores)
            {
                if (core is null)
                {
                    continue;
                }

                var bound = Volatile.Read(ref core.ActiveDeadline);
                if (bound == long.MaxValue)
                {
                    continue;
                }

                if (Interlocked.CompareExchange(ref core.SweepPhase, BatchCore<TItem, TResult>.Sweeping, BatchCore<TItem, TResult>.Dispatching) != BatchCore<TItem, TResult>.Dispatching)
                {
                    // Being cut (its bound is armed below), timed out already, or finishing.
                    if (Volatile.Read(ref core.SweepPhase) != BatchCore<TItem, TResult>.TimedOut)
                    {
                        next = Math.Min(next, bound);
                    }

                    continue;
                }

                var phase = BatchCore<TItem, TResult>.Dispatching;
                if (bound <= now)
                {
                    // The bound is the dispatch's own timeout or its last caller's deadline, whichever comes first: each
                    // caller is told which of the two passed. Take the token source: it is cancelled outside the lock and
                    // never reused. A dispatch whose callers' bound passed has no caller left: it is abandoned, not stuck.
                    var dispatchTimedOut = _dispatchTimeoutTicks != NeverTicks && now - core.DispatchStarted >= _dispatchTimeoutTicks;
                    if (dispatchTimedOut)
                    {
                        (timedOut ??= new()).Add((core, core.Cancellation));
                    }
                    else
                    {
                        Volatile.Write(ref core.AbandonedBySweep, 1); // before the token is cancelled (outside the lock)
                        if (core.Cancellation is { } cancellation)
                        {
                            (abandoned ??= new()).Add(cancellation);
                        }
                    }

                    for (var i = 0; i < core.Count; i++)
                    {
                        released += TimeOut(core.Items[i], core.Uses[i], dispatchTimedOut);
                        for (var k = core.FirstFollower(i); k >= 0; k = core.FollowerNext![k])
                        {
                            released += TimeOut(core.Followers![k], core.FollowerUses![k], dispatchTimedOut);
                        }
                    }

                    phase = BatchCore<TItem, TResult>.TimedOut;
                }
                else
                {
                    // Each batch's items are in submit order, which is deadline order, so its walk stops at the first item
                    // within its bound; a slot's followers came later than the slots after it, so they are all looked at.
                    next = Math.Min(next, bound);
                    var within = false;
                    for (var i = 0; i < core.Count && !within; i++)
                    {
                        within = Expire(core, core.Items[i], core.Uses[i]);
                    }

                    for (var k = 0; k < core.FollowerCount; k++)
                    {
                        itemsDone |= Expire(core, core.Followers![k], core.FollowerUses![k]);
                    }

                    itemsDone |= within;
                }

                Volatile.Write(ref core.SweepPhase, phase);
            }

            // Queued items, from the head: a cell a loop has cut meanwhile is skipped; one claimed and not yet published
            // belongs to a submit that read the clock before this sweep, so its bound is at most a Timeout from now.
            var ring = _ring;
            var tail = ClaimedIndex;
            for (var index = CutIndex; index < tail && !itemsDone; index++)
            {
                var item = PublishedAt(ring, index);
                if (item is null)
                {
                    if (CutIndex > index)
                    {
                        continue;
                    }

                    next = Math.Min(next, now + _timeoutTicks);
                    break;
                }

                itemsDone = ExpireIfDue(item, item.Use, now, ref next, ref released);
            }

            if (next != long.MaxValue)
            {
                ArmSweepLocked(next);
            }
        }

        if (released > 0 && _metrics.Timeouts.Enabled)
        {
            _metrics.Timeouts.Add(released, _metricTag);
        }

        if (abandoned is not null)
        {
            foreach (var cancellation in abandoned)
            {
                Abandon(cancellation);
            }
        }

        if (timedOut is null)
        {
            return;
        }

        foreach (var (core, cancellation) in timedOut)
        {
            BatcherLog.DispatchTimedOut(_logger, _name, core.Count, _dispatchTimeout);
            if (_metrics.StuckDispatches.Enabled)
            {
                _metrics.StuckDispatches.Add(1, _metricTag);
            }

            try
            {
                cancellation?.Cancel();
            }
            catch (AggregateException)
            {
                // Callbacks on the dispatch token are the dispatch's own; it reports through its task.
            }
        }

        int TimeOut(BatchItem<TItem, TResult> item, int use, bool dispatchTimedOut) =>
            item.TrySetException(use, dispatchTimedOut
                ? new BatchTimeoutException(_dispatchTimeout, wasDispatched: true, dispatchTimedOut: true)
                : new BatchTimeoutException(_timeout, wasDispatched: true, dispatchTimedOut: false)) ? 1 : 0;

        // Expires a running batch's item if its bound passed (a caller gone: counted, if the batch counts its callers).
        // Returns whether the item is still within its bound.
        bool Expire(BatchCore<TItem, TResult> core, BatchItem<TItem, TResult> item, int use)
        {
            var before = released;
            var within = ExpireIfDue(item, use, now, ref next, ref released);
            if (released != before && core.Tracked && CountGone(core, item) is { } cancellation)
            {
                (abandoned ??= new()).Add(cancellation);
            }

            return within;
        }
    }
}
