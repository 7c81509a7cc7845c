using System;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Internal;

/// <summary>
/// Completion signalling shared by every primitive. Every <see cref="TaskCompletionSource{TResult}"/>
/// is created here with <see cref="TaskCreationOptions.RunContinuationsAsynchronously"/>, so that
/// completing a waiter never runs the waiter's code inline on the completer's thread (which may be
/// holding state the waiter's continuation would then observe half-updated).
/// </summary>
internal static class Signals
{
    public static TaskCompletionSource<bool> Create() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static TaskCompletionSource<T> Create<T>() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// Waits for <paramref name="task"/> with a timeout measured on <paramref name="timeProvider"/> and a
    /// caller's token. Only the caller's wait is abandoned on timeout or cancellation; the task runs on.
    /// Allocates nothing when the task has already completed or when neither bound applies.
    /// </summary>
    public static Task WaitAsync(Task task, TimeSpan timeout, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        if (task.IsCompleted || (timeout == Timeout.InfiniteTimeSpan && !cancellationToken.CanBeCanceled))
        {
            return task;
        }
#if NET8_0_OR_GREATER
        return task.WaitAsync(timeout, timeProvider, cancellationToken);
#else
        return TimeProviderTaskExtensions.WaitAsync(task, timeout, timeProvider, cancellationToken);
#endif
    }

    /// <summary>
    /// Waits for <paramref name="task"/> for at most <paramref name="timeout"/> (measured on <paramref name="timeProvider"/>):
    /// <see langword="true"/> once the task has completed, whatever its outcome (the caller awaits it for that),
    /// <see langword="false"/> when the bound passed with the task still running; throws
    /// <see cref="OperationCanceledException"/> when the caller's token ends the wait first.
    /// </summary>
    /// <remarks>
    /// The answer comes from the task, not from which exception the wait ended with: a bound that passes just as the task
    /// completes answers <see langword="true"/> (the work finished), and a task that itself fails with a
    /// <see cref="TimeoutException"/> is not mistaken for the wait's own. Sites that caught the wait's
    /// <see cref="TimeoutException"/> with a filter on the task's state let a raw one escape in the first case.
    /// </remarks>
    public static async Task<bool> WaitWithinAsync(Task task, TimeSpan timeout, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        if (task.IsCompleted)
        {
            return true;
        }

        try
        {
            await WaitAsync(task, timeout, timeProvider, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception) when (task.IsCompleted)
        {
            // The task's own outcome (or a bound that passed as it completed): the caller observes it by awaiting the task.
        }
        catch (TimeoutException)
        {
            return false; // the task is still running, so the exception is the wait's own
        }

        return true;
    }

    /// <summary>Waits for <paramref name="task"/> until the caller's token is cancelled.</summary>
    public static Task<T> WaitAsync<T>(Task<T> task, CancellationToken cancellationToken)
    {
        if (task.IsCompleted || !cancellationToken.CanBeCanceled)
        {
            return task;
        }
#if NET8_0_OR_GREATER
        return task.WaitAsync(cancellationToken);
#else
        return TimeProviderTaskExtensions.WaitAsync(task, Timeout.InfiniteTimeSpan, TimeProvider.System, cancellationToken);
#endif
    }

    /// <summary>Waits for <paramref name="task"/> until the caller's token is cancelled.</summary>
    public static Task WaitAsync(Task task, CancellationToken cancellationToken)
    {
        if (task.IsCompleted || !cancellationToken.CanBeCanceled)
        {
            return task;
        }
#if NET8_0_OR_GREATER
        return task.WaitAsync(cancellationToken);
#else
        return TimeProviderTaskExtensions.WaitAsync(task, Timeout.InfiniteTimeSpan, TimeProvider.System, cancellationToken);
#endif
    }

    /// <summary>A timestamp that says no close has begun yet (any real timestamp of any <see cref="TimeProvider"/> differs).</summary>
    public const long NotBegun = long.MinValue;

    /// <summary>
    /// What is left of <paramref name="timeout"/> since <paramref name="beganAt"/> (a timestamp of
    /// <paramref name="timeProvider"/>), never negative; the whole timeout when it is infinite or nothing began yet.
    /// A dispose that follows a close waits for the rest of the close's bound, not for a second one.
    /// </summary>
    public static TimeSpan Remaining(TimeSpan timeout, long beganAt, TimeProvider timeProvider)
    {
        if (timeout == Timeout.InfiniteTimeSpan || beganAt == NotBegun)
        {
            return timeout;
        }

        var left = timeout - timeProvider.GetElapsedTime(beganAt);
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }

    /// <summary>A token source cancelled after <paramref name="delay"/> measured on <paramref name="timeProvider"/>.</summary>
    public static CancellationTokenSource CancelAfter(TimeProvider timeProvider, TimeSpan delay)
    {
        if (delay == Timeout.InfiniteTimeSpan)
        {
            return new CancellationTokenSource();
        }
#if NET8_0_OR_GREATER
        return new CancellationTokenSource(delay, timeProvider);
#else
        return timeProvider.CreateCancellationTokenSource(delay);
#endif
    }
}
