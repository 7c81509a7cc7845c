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
        BatchCore<TItem, TResult>? start = null;
        lock (_lock)
        {
            if (!_closing)
            {
                // The flag shares the admission word: every submit after this swap is refused; every one before it has
                // its item counted, and is pushed and served (a serve below, or one it starts itself) before the drain ends.
                _closing = true;
                Volatile.Write(ref _closeBeganAt, _time.GetTimestamp());
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

                BatcherLog.ShutdownStarted(_logger, _name, _shutdownMode, AdmittedCountLocked, _inFlight);
                FailParkedLocked(ShutDown); // never admitted: they wait for room that will not come

                // Fails the queued items (FailPending) or starts them all, whatever their MaxDelay (Drain).
                start = ServeLocked(holdsDuty: false);
            }
        }

        start?.Start();
    }

    private async Task WaitForDrainAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await Signals.WaitAsync(_drained.Task, timeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException) when (!_drained.Task.IsCompleted)
        {
            int inFlight;
            lock (_lock)
            {
                inFlight = _inFlight;
            }

            BatcherLog.ShutdownTimedOut(_logger, _name, timeout, inFlight);
            throw new ShutdownTimeoutException(_name, timeout, $"Batcher '{_name}' still had {inFlight} dispatch(es) running after {timeout}; their callers are released by their own deadlines, and the batcher completes when the dispatches return.");
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
            item.TrySetException(new ClosedException(
                _name,
                $"Batcher '{_name}' closed (ShutdownMode.FailPending) before this item was dispatched; it never will be."));
            item.ReleaseByBatcher();
        }

        LeaveQueueLocked(failed);
    }

    private void CheckDrainedLocked()
    {
        if (_closing && AdmittedCountLocked == 0 && _inFlight == 0 && _drained.TrySetResult(true))
        {
            // Nothing is left to time out or to batch: let the timers go.
            _sweepTimer?.Dispose();
            _sweepTimer = null;
            _sweepDueAt = long.MaxValue;
            _delayTimer?.Dispose();
            _delayTimer = null;
            _delayDueAt = long.MaxValue;
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
        _sweepTimer.Change(TimerDue(deadline), Timeout.InfiniteTimeSpan);
    }

    /// <summary>
    /// Releases every caller whose bound has passed, and times out every dispatch past its deadline. Items are walked in
    /// submit order, which is deadline order, so that walk stops at the first item still within its bound; running
    /// dispatches (at most MaxConcurrency) are all checked. Then the timer is re-armed for the earliest deadline left.
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
        if (released > 0 && _metrics.Timeouts.Enabled)
        {
            _metrics.Timeouts.Add(released, _metricTag);
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
    }
}
