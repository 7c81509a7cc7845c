using System;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Internal;

/// <summary>
/// A reusable unit of work queued to the thread pool without a per-dispatch allocation (on
/// net8.0 the object itself is the <c>IThreadPoolWorkItem</c>). The caller's
/// <see cref="ExecutionContext"/> flows, as it would through <c>Task.Run</c>.
/// </summary>
internal abstract class PoolWorkItem
#if NET8_0_OR_GREATER
    : IThreadPoolWorkItem
#endif
{
    /// <summary>
    /// Microsoft.Coyote 1.7 controls <see cref="Task"/> scheduling but not raw thread-pool work
    /// items. The systematic tests set this so that every dispatch is a task the Coyote scheduler
    /// can interleave; behaviour is otherwise identical (run once, later, on the pool).
    /// </summary>
    internal static bool UseTaskScheduling;

    private static readonly Action<object?> RunAsTask = static state => ((PoolWorkItem)state!).Execute();
#if NET8_0_OR_GREATER
    private static readonly ContextCallback RunInContext = static state => ((PoolWorkItem)state!).Execute();

    private ExecutionContext? _context;
#else
    private static readonly WaitCallback RunOnPool = static state => ((PoolWorkItem)state!).Execute();
#endif

    /// <summary>Queues <see cref="Execute"/> to run once on the thread pool.</summary>
    /// <param name="flowContext">
    /// Whether the caller's <see cref="ExecutionContext"/> (its AsyncLocals, its Activity) flows to the work, as with
    /// <c>Task.Run</c>. Without it the work runs in the default context (on netstandard2.0 too).
    /// </param>
    /// <param name="preferLocal">
    /// On a pool thread, whether the work goes to this worker's own queue (which runs the work queued last first, so it
    /// runs next, before work queued earlier) or to the pool's shared queue (behind it). Ignored on netstandard2.0 (shared queue).
    /// </param>
    protected void Dispatch(bool flowContext = true, bool preferLocal = true)
    {
        if (UseTaskScheduling)
        {
            _ = Task.Factory.StartNew(RunAsTask, this, CancellationToken.None, TaskCreationOptions.DenyChildAttach, TaskScheduler.Default);
            return;
        }
#if NET8_0_OR_GREATER
        _context = flowContext ? ExecutionContext.Capture() : null;
        ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal);
#else
        if (flowContext)
        {
            ThreadPool.QueueUserWorkItem(RunOnPool, this);
        }
        else
        {
            ThreadPool.UnsafeQueueUserWorkItem(RunOnPool, this);
        }
#endif
    }

    /// <summary>
    /// Runs <paramref name="continuation"/> once <paramref name="task"/> (not yet complete) completes, without
    /// capturing a context and without an allocation of ours (the cached delegate is stored in the task).
    /// </summary>
    protected static void ContinueWhenCompleted(Task task, Action continuation)
    {
        if (UseTaskScheduling)
        {
            _ = ContinueAfterAwaitAsync(task, continuation);
            return;
        }

        task.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(continuation);
    }

    /// <summary>Runs <paramref name="continuation"/> once <paramref name="pending"/> (not yet complete) completes; the continuation then consumes <paramref name="pending"/>.</summary>
    protected static void ContinueWhenCompleted(ref ValueTask pending, Action continuation)
    {
        if (UseTaskScheduling)
        {
            var task = pending.AsTask();
            pending = new ValueTask(task);
            _ = ContinueAfterAwaitAsync(task, continuation);
            return;
        }

        pending.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(continuation);
    }

    /// <summary>Runs <paramref name="continuation"/> once <paramref name="pending"/> (not yet complete) completes; the continuation then consumes <paramref name="pending"/>.</summary>
    protected static void ContinueWhenCompleted<T>(ref ValueTask<T> pending, Action continuation)
    {
        if (UseTaskScheduling)
        {
            var task = pending.AsTask();
            pending = new ValueTask<T>(task);
            _ = ContinueAfterAwaitAsync(task, continuation);
            return;
        }

        pending.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(continuation);
    }

    /// <summary>The work itself; runs on a thread-pool thread.</summary>
    protected abstract void Execute();

    private static async Task ContinueAfterAwaitAsync(Task task, Action continuation)
    {
        try
        {
            await task.ConfigureAwait(false);
        }
        catch
        {
            // The continuation reads the outcome from the task itself.
        }

        continuation();
    }

#if NET8_0_OR_GREATER
    void IThreadPoolWorkItem.Execute()
    {
        var context = _context;
        _context = null;
        if (context is null)
        {
            Execute();
        }
        else
        {
            ExecutionContext.Run(context, RunInContext, this);
        }
    }
#endif
}
