using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

public sealed partial class TaskTracker
{
    /// <summary>Closes the tracker and waits, without a timeout, until everything registered has finished.</summary>
    /// <param name="cancellationToken">Abandons this wait; the tracker stays closing and the work keeps running.</param>
    /// <returns>A task that completes when the tracker has completed.</returns>
    /// <remarks>See <see cref="CloseAsync(TimeSpan, CancellationToken)"/>.</remarks>
    /// <exception cref="AggregateException">Tracked work failed; the failures are the inner exceptions, in the order they happened.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public Task CloseAsync(CancellationToken cancellationToken = default) => CloseAsync(Timeout.InfiniteTimeSpan, cancellationToken);

    /// <summary>Closes the tracker and waits until everything registered has finished, or the timeout elapses.</summary>
    /// <param name="timeout">How long to wait, measured on the options' <see cref="TimeProvider"/>; <see cref="Timeout.InfiniteTimeSpan"/> for no limit.</param>
    /// <param name="cancellationToken">Abandons this wait; the tracker stays closing and the work keeps running.</param>
    /// <returns>A task that completes when the tracker has completed.</returns>
    /// <remarks>
    /// Closing cancels <see cref="Stopping"/> and rejects new top-level work at once; running work may still register
    /// children through its handle, and they are waited for. When the count reaches zero the tracker is complete and
    /// every later registration fails. Calling it again (or concurrently) waits for the same completion; failures are
    /// thrown to every caller that waits for completion.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="TaskTrackerTimeoutException">The timeout elapsed first; the exception lists what is outstanding.</exception>
    /// <exception cref="AggregateException">Tracked work failed; the failures are the inner exceptions, in the order they happened.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public Task CloseAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Guard.Timeout(timeout);
        BeginClose();
        var closed = _closed!.Task;
        if (closed.IsCompleted)
        {
            return TakeFailures(onlyUnobserved: false) is { } failures ? Task.FromException(failures) : Task.CompletedTask;
        }

        return WaitForCompletionAsync(closed, timeout, onlyUnobserved: false, cancellationToken);
    }

    /// <summary>Closes the tracker and waits up to <see cref="TaskTrackerOptions.DisposeTimeout"/> for everything registered to finish.</summary>
    /// <returns>A task that completes when the tracker has completed.</returns>
    /// <remarks>
    /// After disposal begins, top-level registrations throw <see cref="ObjectDisposedException"/>. Failures already thrown
    /// by <c>CloseAsync</c> are not thrown again; failures nobody has seen are.
    /// </remarks>
    /// <exception cref="TaskTrackerTimeoutException">The dispose timeout elapsed first; the exception lists what is outstanding.</exception>
    /// <exception cref="AggregateException">Tracked work failed and no <c>CloseAsync</c> call has thrown those failures yet.</exception>
    public ValueTask DisposeAsync()
    {
        _disposed = true;
        BeginClose();
        var closed = _closed!.Task;
        if (closed.IsCompleted)
        {
            return TakeFailures(onlyUnobserved: true) is { } failures ? new ValueTask(Task.FromException(failures)) : default;
        }

        return new ValueTask(WaitForCompletionAsync(closed, _disposeTimeout, onlyUnobserved: true, CancellationToken.None));
    }

    private async Task WaitForCompletionAsync(Task closed, TimeSpan timeout, bool onlyUnobserved, CancellationToken cancellationToken)
    {
        try
        {
            await Signals.WaitAsync(closed, timeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            var outstanding = Snapshot();
            var unnamed = (int)(Volatile.Read(ref _hot.State) & AnonymousMask);
            var exception = new TaskTrackerTimeoutException(_name, timeout, outstanding, unnamed);
            TaskTrackerLog.CloseTimedOut(_logger, _name, timeout, outstanding.Count + unnamed, exception);
            throw exception;
        }

        if (TakeFailures(onlyUnobserved) is { } failures)
        {
            throw failures;
        }
    }

    private void BeginClose()
    {
        if (Volatile.Read(ref _closed) is null)
        {
            // Published before the closing bit: whoever sees CompleteBit also sees the signal.
            Interlocked.CompareExchange(ref _closed, Signals.Create(), null);
        }

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
        if (_closed!.TrySetResult(true))
        {
            int failures;
            lock (_registry)
            {
                // Complete: no node will be taken again, so let later trackers reuse this one's.
                SweepReleasedLocked(out _); // complete: every release has been counted, so this only unlinks
                _hot.Pool.HandBack();
                failures = _failures?.Count ?? 0;
            }

            TaskTrackerLog.Completed(_logger, _name, failures);
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
            // Callbacks registered on Stopping are user code run by the cancel; their failures are
            // surfaced by CloseAsync like any other.
            foreach (var failure in callbackFailures.InnerExceptions)
            {
                RecordFailure("Stopping callback", 0, failure);
            }
        }
    }

    private AggregateException? TakeFailures(bool onlyUnobserved)
    {
        List<Exception> copy;
        lock (_registry)
        {
            if (_failures is null || (onlyUnobserved && _failuresObserved))
            {
                return null;
            }

            _failuresObserved = true;
            copy = new List<Exception>(_failures);
        }

        return new AggregateException($"{copy.Count} operation(s) tracked by '{_name}' failed.", copy);
    }
}
