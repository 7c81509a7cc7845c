using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary>
/// One registration's record, pooled (see <see cref="NodePool"/>). It is at once the registry entry (for
/// <see cref="TaskTracker.GetOutstanding"/>), the thread-pool work item that starts <c>Go</c> work, and
/// the continuation that observes the work's task, so that a <c>Go</c> costs no allocation of ours
/// once the pool is warm. <see cref="Id"/> and <see cref="Tracker"/> double as the version: handles carry
/// the tracker and id they were issued with, and a node reused for a later registration never answers to an old handle.
/// </summary>
internal sealed class TrackedNode : PoolWorkItem
{
    private static readonly Task CancelledTask = Task.FromCanceled(new CancellationToken(canceled: true));

    private readonly Action _onWorkCompleted;
    private Task? _runningWork;

    public TrackedNode() => _onWorkCompleted = OnWorkCompleted;

    /// <summary>The tracker this node is registered with; null while pooled.</summary>
    public TaskTracker? Tracker;

    // All fields below are written under the tracker's registry lock while the node is linked or
    // pooled, and read either under that lock (GetOutstanding, liveness checks) or by the one piece of
    // work the node is running (which owns it until its release).

    /// <summary>
    /// The registration's id while it is out; its negation once finished <c>Go</c> work has released it and the count
    /// has not yet been lowered for it; 0 once it has (and while the node sits in the pool).
    /// </summary>
    public long Id;

    public long ParentId;
    public string Name = string.Empty;
    public TrackedOperationKind Kind;
    public long RegisteredTimestamp;
    public string? StackTrace;
    public volatile bool WaitingForSlot;

    /// <summary>Whether the watchdog has reported this registration as long-running (once per registration).</summary>
    public bool LongRunningReported;

    /// <summary>Whether this work took a concurrency slot (top-level work under a limit), to give back on completion.</summary>
    public bool HoldsSlot;

    /// <summary>The next (older) record in the tracker's registry while linked; the next free record while pooled.</summary>
    public TrackedNode? Next;

    /// <summary>For the head of a chain handed to the shared reservoir: how many nodes the chain holds.</summary>
    public int ChainLength;
    public Func<CancellationToken, Task>? Work;

    /// <summary>For work started by <c>RunAsync</c>: the task handed to its caller, completed as the work's task completes.</summary>
    public TaskCompletionSource<bool>? Observer;
    public Func<TrackedOperation, CancellationToken, Task>? WorkWithHandle;

    public bool IsLive(TaskTracker tracker, long id)
    {
        // Volatile: a handle on another thread asks whether its registration is still out.
        return id != 0 && Volatile.Read(ref Id) == id && ReferenceEquals(Volatile.Read(ref Tracker), tracker);
    }

    public void Start() => Dispatch();

    protected override void Execute()
    {
        var tracker = Tracker!;
        Task task;
        try
        {
            task = Work is { } work
                ? work(tracker.ClosingToken)
                : WorkWithHandle!(new TrackedOperation(tracker, this, Id), tracker.ClosingToken);
            if (task is null)
            {
                throw new InvalidOperationException($"The work '{Name}' returned a null Task; return Task.CompletedTask instead.");
            }
        }
        catch (OperationCanceledException)
        {
            // As from an async delegate: a cancellation thrown before the task came back is a cancelled task, not a failure.
            tracker.CompleteWork(this, CancelledTask, null);
            return;
        }
        catch (Exception exception)
        {
            tracker.CompleteWork(this, null, exception);
            return;
        }

        if (task.IsCompleted)
        {
            tracker.CompleteWork(this, task, null);
        }
        else
        {
            _runningWork = task;
            ContinueWhenCompleted(task, _onWorkCompleted);
        }
    }

    private void OnWorkCompleted()
    {
        var task = _runningWork!;
        _runningWork = null;
        Tracker!.CompleteWork(this, task, null);
    }
}
