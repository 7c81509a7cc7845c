using System;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>
/// Bounds how long a test may hang before it fails. Never used to wait for something to happen:
/// the awaited task is always one that a gate or the code under test completes. <see cref="Until"/> is for the rare
/// state that raises nothing to await while the test must see it: it watches on a thread of its own, bounded.
/// </summary>
public static class Bounded
{
    public static readonly TimeSpan HangLimit = TimeSpan.FromSeconds(30);

    public static Task OrHang(this Task task) => task.WaitAsync(HangLimit);

    public static Task<T> OrHang<T>(this Task<T> task) => task.WaitAsync(HangLimit);

    public static Task OrHang(this ValueTask task) => task.AsTask().WaitAsync(HangLimit);

    public static Task<T> OrHang<T>(this ValueTask<T> task) => task.AsTask().WaitAsync(HangLimit);

    /// <summary>
    /// Waits until <paramref name="condition"/> holds, watching on a thread of its own (not a pool thread: a loop of
    /// <c>await Task.Yield()</c> on a pool thread keeps re-queueing itself there and starves the work it waits for when
    /// the pool is small); throws <see cref="TimeoutException"/> naming <paramref name="what"/> after <see cref="HangLimit"/>.
    /// </summary>
    public static async Task Until(Func<bool> condition, string what)
    {
        var met = await Task.Factory.StartNew(
            () => SpinWait.SpinUntil(condition, HangLimit),
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default).ConfigureAwait(false);
        if (!met)
        {
            throw new TimeoutException($"{what} did not happen within {HangLimit}.");
        }
    }

    /// <summary>
    /// Waits on this very thread until <paramref name="condition"/> holds (for a test whose next steps must run on the
    /// thread it has been on, with no await between them); throws <see cref="TimeoutException"/> naming
    /// <paramref name="what"/> after <see cref="HangLimit"/>.
    /// </summary>
    public static void UntilOnThisThread(Func<bool> condition, string what)
    {
        if (!SpinWait.SpinUntil(condition, HangLimit))
        {
            throw new TimeoutException($"{what} did not happen within {HangLimit}.");
        }
    }

    /// <summary>A gate: a task completion source whose continuations never run inline on the releaser.</summary>
    public static TaskCompletionSource NewGate() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static TaskCompletionSource<T> NewGate<T>() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
