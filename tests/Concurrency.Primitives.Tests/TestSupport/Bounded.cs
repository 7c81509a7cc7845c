using System;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>
/// Bounds how long a test may hang before it fails. Never used to wait for something to happen:
/// the awaited task is always one that a gate or the code under test completes.
/// </summary>
public static class Bounded
{
    public static readonly TimeSpan HangLimit = TimeSpan.FromSeconds(30);

    public static Task OrHang(this Task task) => task.WaitAsync(HangLimit);

    public static Task<T> OrHang<T>(this Task<T> task) => task.WaitAsync(HangLimit);

    public static Task OrHang(this ValueTask task) => task.AsTask().WaitAsync(HangLimit);

    public static Task<T> OrHang<T>(this ValueTask<T> task) => task.AsTask().WaitAsync(HangLimit);

    /// <summary>A gate: a task completion source whose continuations never run inline on the releaser.</summary>
    public static TaskCompletionSource NewGate() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static TaskCompletionSource<T> NewGate<T>() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
