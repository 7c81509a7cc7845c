using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

public sealed partial class Batcher<TItem, TResult>
{
    private static readonly TimerCallback SweepCallback = static state => ((Batcher<TItem, TResult>)state!).SweepDeadlines();

    private ITimer? _sweepTimer;
    private long _sweepDueAt = long.MaxValue;

    /// <summary>
    /// Stops accepting items (every later <c>SubmitAsync</c> fails at once with <see cref="ObjectDisposedException"/>),
    /// drains or fails the queued items per <see cref="BatcherOptions.ShutdownMode"/>, and waits for running dispatches.
    /// </summary>
    /// <param name="cancellationToken">Abandons this wait; the shutdown goes on.</param>
    /// <returns>A task that completes when no batch is queued and no dispatch runs.</returns>
    /// <exception cref="TimeoutException">Dispatches were still running after <see cref="BatcherOptions.ShutdownTimeout"/> (their callers are bounded by their own deadlines).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public async Task CompleteAsync(CancellationToken cancellationToken = default)
    {
        Task drained;
        BatchCore<TItem, TResult>? start = null;
        lock (_lock)
        {
            if (!_closing)
            {
                // The flag shares the admission word: every submit after this swap is refused; every one before it has
                // its item counted, and is pushed and served (a serve below, or one it starts itself) before the drain ends.
                _closing = true;
                var admitted = Volatile.Read(ref _submit.Admitted);
                while (true)
                {
                    var seen = Interlocked.CompareExchange(ref _submit.Admitted, admitted | SubmitState.Closing, admitted);
                    if (seen == admitted)
                    {
                        break;
                    }

                    admitted = seen;
                }

                _drained = Signals.Create();
                BatcherLog.ShutdownStarted(_logger, _name, _shutdownMode, AdmittedCountLocked, _inFlight);
                _roomWaiters.FailAll(ShutDown);
                Volatile.Write(ref _submit.RoomWaiters, 0);

                // Fails the queued items (FailPending) or starts them all, whatever their MaxDelay (Drain).
                start = ServeLocked(holdsDuty: false);
            }

            drained = _drained!.Task;
        }

        start?.Start();

        try
        {
            await Signals.WaitAsync(drained, _shutdownTimeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            int inFlight;
            lock (_lock)
            {
                inFlight = _inFlight;
            }

            BatcherLog.ShutdownTimedOut(_logger, _name, _shutdownTimeout, inFlight);
            throw new TimeoutException($"Batcher '{_name}' still had {inFlight} dispatch(es) running after {_shutdownTimeout}; their callers are released by their own deadlines.");
        }
    }

    /// <summary>Shuts the batcher down as <see cref="CompleteAsync"/> does.</summary>
    /// <returns>A task that completes when the batcher has shut down.</returns>
    /// <exception cref="TimeoutException">Dispatches were still running after <see cref="BatcherOptions.ShutdownTimeout"/>.</exception>
    public async ValueTask DisposeAsync()
    {
        await CompleteAsync(CancellationToken.None).ConfigureAwait(false);
        lock (_lock)
        {
            _sweepTimer?.Dispose();
            _sweepTimer = null;
            _sweepDueAt = long.MaxValue;
            _delayTimer?.Dispose();
            _delayTimer = null;
            _delayDueAt = long.MaxValue;
        }
    }

    private void FailQueuedLocked()
    {
        var failed = _queued;
        if (failed == 0)
        {
            return;
        }

        while (_queued > 0)
        {
            var item = _queue[_queueHead];
            _queue[_queueHead] = null!;
            _queueHead = QueueIndex(1);
            _queued--;
            item.TrySetException(new ObjectDisposedException(
                nameof(Batcher<TItem, TResult>),
                $"Batcher '{_name}' shut down (ShutdownMode.FailPending) before this item was dispatched."));
            item.ReleaseByBatcher();
        }

        LeaveQueueLocked(failed);
    }

    private void CheckDrainedLocked()
    {
        if (_closing && AdmittedCountLocked == 0 && _inFlight == 0)
        {
            _drained!.TrySetResult(true);
        }
    }

    /// <summary>Releases <paramref name="item"/> if its bound has passed; returns <see langword="true"/> at the first item still within it.</summary>
    private bool ExpireIfDue(BatchItem<TItem, TResult> item, long now, ref long next, ref int released)
    {
        if (item.IsCompleted || item.HasOwnDeadline)
        {
            return false;
        }

        if (item.Deadline > now)
        {
            next = Math.Min(next, item.Deadline);
            return true;
        }

        if (item.TrySetException(new BatchTimeoutException(_timeout, item.Dispatched, dispatchTimedOut: false)))
        {
            released++;
        }

        return false;
    }

    /// <summary>Makes sure the sweep fires no later than <paramref name="deadline"/>; called under the lock.</summary>
    private void ArmSweepLocked(long deadline)
    {
        if (_sweepDueAt <= deadline)
        {
            // Armed for an earlier deadline (the usual case): that fire re-arms for the rest.
            return;
        }

        _sweepDueAt = deadline;
        _sweepTimer ??= _time.CreateTimer(SweepCallback, this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _sweepTimer.Change(Remaining(deadline), Timeout.InfiniteTimeSpan);
    }

    /// <summary>
    /// Releases every caller whose bound has passed, and times out every dispatch past its deadline. Items are walked in
    /// submit order, which is deadline order, so that walk stops at the first item still within its bound; running
    /// dispatches (at most MaxConcurrentBatches) are all checked. Then the timer is re-armed for the earliest deadline left.
    /// </summary>
    private void SweepDeadlines()
    {
        var released = 0;
        List<(BatchCore<TItem, TResult> Core, CancellationTokenSource? Cancellation)>? timedOut = null;
        BatchCore<TItem, TResult>? start;
        lock (_lock)
        {
            _sweepDueAt = long.MaxValue;
            TakeIncomingLocked(); // items still on the stack are walked too
            var now = Now();
            var next = long.MaxValue;
            var itemsDone = false;

            // Running dispatches first: their items were queued before every item still in the queue.
            for (var core = _running.First; core is not null; core = IntrusiveList<BatchCore<TItem, TResult>, BatchCoreLinks<TItem, TResult>>.NextOf(core))
            {
                if (!core.TimedOut)
                {
                    if (core.DispatchDeadline <= now)
                    {
                        core.TimedOut = true;

                        // Detach the token source: it is cancelled outside the lock and must never be reused.
                        (timedOut ??= new()).Add((core, core.Cancellation));
                        core.Cancellation = null;
                        for (var i = 0; i < core.Count; i++)
                        {
                            if (!core.Items[i].IsCompleted && core.Items[i].TrySetException(new BatchTimeoutException(_dispatchTimeout, wasDispatched: true, dispatchTimedOut: true)))
                            {
                                released++;
                            }
                        }
                    }
                    else
                    {
                        next = Math.Min(next, core.DispatchDeadline);
                    }
                }

                for (var i = 0; i < core.Count && !itemsDone; i++)
                {
                    itemsDone = ExpireIfDue(core.Items[i], now, ref next, ref released);
                }
            }

            for (var i = 0; i < _queued && !itemsDone; i++)
            {
                itemsDone = ExpireIfDue(_queue[QueueIndex(i)], now, ref next, ref released);
            }

            if (next != long.MaxValue)
            {
                ArmSweepLocked(next);
            }

            // The take above may have queued due items; serving re-arms the parked look-back too.
            start = ServeLocked(holdsDuty: false);
        }

        start?.Start();
        if (released > 0 && BatcherMetrics.Timeouts.Enabled)
        {
            BatcherMetrics.Timeouts.Add(released, _metricTag);
        }

        if (timedOut is null)
        {
            return;
        }

        foreach (var (core, cancellation) in timedOut)
        {
            BatcherLog.DispatchTimedOut(_logger, _name, core.Count, _dispatchTimeout);
            if (BatcherMetrics.StuckDispatches.Enabled)
            {
                BatcherMetrics.StuckDispatches.Add(1, _metricTag);
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
    }
}
