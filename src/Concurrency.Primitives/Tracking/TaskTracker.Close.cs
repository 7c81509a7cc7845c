using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

public sealed partial class TaskTracker
{
    private long _closeBeganAt = Signals.NotBegun;

    /// <summary>Closes the tracker and waits, up to <see cref="TaskTrackerOptions.ShutdownTimeout"/>, until everything registered has finished.</summary>
    /// <param name="cancellationToken">Abandons this wait; the tracker stays closing and the work keeps running.</param>
    /// <returns>A task that completes when the tracker has completed.</returns>
    /// <remarks>See <see cref="CloseAsync(TimeSpan, CancellationToken)"/>.</remarks>
    /// <exception cref="TaskTrackerTimeoutException">The timeout elapsed first; the exception lists what is outstanding.</exception>
    /// <exception cref="Exception">Tracked work failed: the task is faulted with every recorded failure; <c>await</c> throws the first.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public Task CloseAsync(CancellationToken cancellationToken = default) => CloseAsync(_shutdownTimeout, cancellationToken);

    /// <summary>Closes the tracker and waits until everything registered has finished, or the timeout elapses.</summary>
    /// <param name="timeout">How long to wait, measured on the options' <see cref="TimeProvider"/>; <see cref="Timeout.InfiniteTimeSpan"/> for no limit.</param>
    /// <param name="cancellationToken">Abandons this wait; the tracker stays closing and the work keeps running.</param>
    /// <returns>A task that completes when the tracker has completed.</returns>
    /// <remarks>
    /// Closing cancels <see cref="ClosingToken"/> and rejects new top-level work at once; running work may still register
    /// children through its handle, and they are waited for. When the count reaches zero the tracker is complete and
    /// every later registration fails. Calling it again (or concurrently) waits for the same completion. The returned
    /// task is faulted, as <see cref="Completion"/> is, with every recorded failure of tracked work: <c>await</c> throws
    /// the first, and <see cref="Task.Exception"/> holds them all (as with <c>Task.WhenAll</c>).
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="TaskTrackerTimeoutException">The timeout elapsed first; the exception lists what is outstanding.</exception>
    /// <exception cref="Exception">Tracked work failed: the first recorded failure (the task holds them all).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public Task CloseAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Guard.Timeout(timeout);
        BeginClose();
        var completion = _completion.Task;
        return completion.IsCompleted ? completion : WaitForCompletionAsync(completion, timeout, cancellationToken);
    }

    /// <summary>
    /// Begins closing without waiting: rejects every later top-level registration with <see cref="ObjectDisposedException"/>,
    /// cancels <see cref="ClosingToken"/>, and returns at once. Never blocks and never throws; the outcome is logged (as by
    /// <see cref="DisposeAsync"/>) and readable on <see cref="Completion"/>.
    /// </summary>
    public void Dispose() => _ = DisposeAsync().AsTask();

    /// <summary>
    /// Closes the tracker and waits up to <see cref="TaskTrackerOptions.ShutdownTimeout"/>, counted from when the close
    /// began (a dispose after a close that timed out does not wait a second full bound), for everything registered to
    /// finish. Never throws: on timeout it logs the stragglers (name, age, parent, registration site) at Error, and the
    /// recorded failures at Error; both stay readable on <see cref="Completion"/> (and a later <c>CloseAsync</c> waits again).
    /// </summary>
    /// <returns>A task that completes when the tracker has completed, or the timeout has elapsed.</returns>
    /// <remarks>After disposal begins, top-level registrations throw <see cref="ObjectDisposedException"/>.</remarks>
    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        try
        {
            BeginClose();
            await CloseAsync(Signals.Remaining(_shutdownTimeout, Volatile.Read(ref _closeBeganAt), _time), CancellationToken.None).ConfigureAwait(false);
        }
        catch (TaskTrackerTimeoutException timeout)
        {
            TaskTrackerLog.DisposeTimedOut(_logger, _name, _shutdownTimeout, timeout.Outstanding.Count + timeout.UnnamedCount, timeout);
        }
        catch (Exception)
        {
            var failures = _completion.Task.Exception?.InnerExceptions;
            TaskTrackerLog.DisposedWithFailures(_logger, _name, failures?.Count ?? 0, _completion.Task.Exception);
        }
    }

    private Task WaitForCompletionAsync(Task completion, TimeSpan timeout, CancellationToken cancellationToken)
    {
        // The wait keeps the completion's outcome as it is (every failure, not one wrapped in another); only a timeout of
        // the wait itself becomes the report of what is still outstanding.
        var waited = Signals.WaitAsync(completion, timeout, _time, cancellationToken);
        return waited.ContinueWith(
            wait => ReportTimeout(wait, timeout),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default).Unwrap();
    }

    private Task ReportTimeout(Task wait, TimeSpan timeout)
    {
        if (_completion.Task.IsCompleted)
        {
            return _completion.Task; // completed meanwhile (or the wait ended with it): its outcome, whatever the wait saw
        }

        if (!wait.IsFaulted || wait.Exception!.InnerException is not TimeoutException)
        {
            return wait; // cancelled by the caller's token
        }

        var outstanding = GetOutstanding();
        var unnamed = (int)(Volatile.Read(ref _hot.State) & AnonymousMask);
        var exception = new TaskTrackerTimeoutException(_name, timeout, outstanding, unnamed);
        TaskTrackerLog.CloseTimedOut(_logger, _name, timeout, outstanding.Count + unnamed, exception);
        return Task.FromException(exception);
    }

    private void BeginClose()
    {
        // Releases not yet counted come off the count first, and later ones at once: the count a close waits on is exact.
        EnsureEagerRelease();
        var state = Volatile.Read(ref _hot.State);
        long next;
        while (true)
        {
            if ((state & ClosingBit) != 0)
            {
                return;
            }

            next = Settle(state | ClosingBit);
            Volatile.Write(ref _closeBeganAt, _time.GetTimestamp()); // before the flag: whoever sees it closing sees when
            var seen = Interlocked.CompareExchange(ref _hot.State, next, state);
            if (seen == state)
            {
                break;
            }

            state = seen;
        }

        TaskTrackerLog.CloseStarted(_logger, _name, CountOf(next));
        CancelStopping();
        if ((next & CompleteBit) != 0)
        {
            CompleteTerminal();
        }
    }

    private void CompleteTerminal()
    {
        if (_completion.Task.IsCompleted)
        {
            return;
        }

        List<Exception>? failures;
        lock (_registry)
        {
            // Complete: no node will be taken again, so let later trackers reuse this one's.
            SweepReleasedLocked(out _); // complete: every release has been counted, so this only unlinks
            _hot.Pool.HandBack();
            _watchdogArmed = true; // never armed again: nothing registers once complete
            failures = _failures is null ? null : new List<Exception>(_failures);
        }

        _watchdog?.Dispose();
        if (failures is null ? _completion.TrySetResult(true) : _completion.TrySetException(failures))
        {
            TaskTrackerLog.Completed(_logger, _name, failures?.Count ?? 0);
        }
    }

    private void CancelStopping()
    {
        try
        {
            _stopping.Cancel();
        }
        catch (AggregateException callbackFailures)
        {
            // Callbacks registered on ClosingToken are user code run by the cancel; their failures are
            // surfaced by CloseAsync like any other.
            foreach (var failure in callbackFailures.InnerExceptions)
            {
                RecordFailure("ClosingToken callback", 0, failure);
            }
        }
    }
}
