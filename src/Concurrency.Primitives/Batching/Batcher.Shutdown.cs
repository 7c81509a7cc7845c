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
        List<BatchCore<TItem, TResult>>? starts = null;
        lock (_lock)
        {
            if (!_closing)
            {
                _closing = true;
                _drained = Signals.Create();
                BatcherLog.ShutdownStarted(_logger, _name, _shutdownMode, _queued, _inFlight);
                while (_roomWaiters.Count > 0)
                {
                    _roomWaiters.Dequeue().TrySetException(ShutDown());
                }

                if (_shutdownMode == BatcherShutdownMode.FailPending)
                {
                    FailQueuedLocked();
                }
                else if (_forming is not null)
                {
                    SealFormingLocked();
                }

                while (TryStartLocked() is { } start)
                {
                    (starts ??= new List<BatchCore<TItem, TResult>>()).Add(start);
                }

                CheckDrainedLocked();
            }

            drained = _drained!.Task;
        }

        if (starts is not null)
        {
            foreach (var start in starts)
            {
                start.Start();
            }
        }

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
        }
    }

    private void FailQueuedLocked()
    {
        var batches = new List<BatchCore<TItem, TResult>>(_ready);
        _ready.Clear();
        if (_forming is not null)
        {
            batches.Add(_forming);
            _forming = null;
        }

        foreach (var core in batches)
        {
            _queued -= core.Count;
            if (BatcherMetrics.Queued.Enabled)
            {
                BatcherMetrics.Queued.Add(-core.Count, _metricTag);
            }

            for (var i = 0; i < core.Count; i++)
            {
                core.Items[i].TrySetException(new ObjectDisposedException(
                    nameof(Batcher<TItem, TResult>),
                    $"Batcher '{_name}' shut down (ShutdownMode.FailPending) before this item was dispatched."));
                core.Items[i].ReleaseByBatcher();
                core.Items[i] = null!;
            }

            core.Count = 0;
            UnlinkLocked(core);
            ReturnCoreLocked(core);
        }
    }

    private void CheckDrainedLocked()
    {
        if (_closing && _forming is null && _ready.Count == 0 && _inFlight == 0)
        {
            _drained!.TrySetResult(true);
        }
    }

    /// <summary>Makes sure the sweep fires no later than <paramref name="deadline"/>; called under the lock.</summary>
    private void ArmSweepLocked(long deadline)
    {
        if (_sweepDueAt != long.MaxValue)
        {
            // Armed for an earlier deadline: that fire re-arms for the rest, in submit order.
            return;
        }

        _sweepDueAt = deadline;
        _sweepTimer ??= _time.CreateTimer(SweepCallback, this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _sweepTimer.Change(Remaining(deadline), Timeout.InfiniteTimeSpan);
    }

    /// <summary>
    /// Releases every caller whose bound has passed. Items are walked in submit order, which is deadline order, so
    /// the walk stops at the first item still within its bound and the timer is re-armed for it.
    /// </summary>
    private void SweepDeadlines()
    {
        var released = 0;
        lock (_lock)
        {
            _sweepDueAt = long.MaxValue;
            var now = _time.GetTimestamp();
            var next = long.MaxValue;
            for (var core = _liveHead; core is not null && next == long.MaxValue; core = core.Next)
            {
                for (var i = 0; i < core.Count; i++)
                {
                    var item = core.Items[i];
                    if (item.IsCompleted || item.HasOwnDeadline)
                    {
                        continue;
                    }

                    if (item.Deadline > now)
                    {
                        next = item.Deadline;
                        break;
                    }

                    if (item.TrySetException(new BatchTimeoutException(_timeout, item.Dispatched, dispatchTimedOut: false)))
                    {
                        released++;
                    }
                }
            }

            if (next != long.MaxValue && _sweepTimer is not null)
            {
                _sweepDueAt = next;
                _sweepTimer.Change(Remaining(next), Timeout.InfiniteTimeSpan);
            }
        }

        if (released > 0 && BatcherMetrics.Timeouts.Enabled)
        {
            BatcherMetrics.Timeouts.Add(released, _metricTag);
        }
    }
}
