using System;
using System.Threading;
using System.Threading.Tasks;
using System.Threading.Tasks.Sources;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary>
/// One submitted item and its caller's wait: a pooled <see cref="IValueTaskSource{TResult}"/>. It completes exactly
/// once (a compare-and-swap decides between the dispatch, the caller's token, the deadline and the sweep), and
/// goes back to its batcher's pool only when both of its owners, the caller (after reading its result) and the
/// batcher (after the batch is done with it), have let go. The core's version guards a recycled item against a
/// stale <see cref="ValueTask{TResult}"/>.
/// </summary>
internal sealed class BatchItem<TItem, TResult> : IValueTaskSource<TResult>, IFreeListNode<BatchItem<TItem, TResult>>
{
    private const int Pending = 0;
    private const int Completed = 1;
    private const int MaxThreadCache = 256;

    private static readonly Action<object?> CancelCallback = static state => ((BatchItem<TItem, TResult>)state!).OnCallerCancelled();
    private static readonly TimerCallback DeadlineCallback = static state => ((BatchItem<TItem, TResult>)state!).OnOwnDeadline();

    // A small free list per thread: a caller that awaits its result (GetResult releases the item) usually submits its
    // next item from the same thread, so most items are recycled without any synchronisation.
    [ThreadStatic]
    private static BatchItem<TItem, TResult>? t_free;
    [ThreadStatic]
    private static int t_freeCount;

    private Batcher<TItem, TResult>? _owner;
    private BatchItem<TItem, TResult>? _nextFree;
    private ManualResetValueTaskSourceCore<TResult> _core;
    private int _state;
    private int _owners;
    private CancellationToken _token;
    private CancellationTokenRegistration _registration;
    private ITimer? _ownDeadline;
    private TimeSpan _ownBound;

    private BatchItem() => _core.RunContinuationsAsynchronously = true;

    public TItem Value = default!;

    /// <summary>When the caller's bound passes (a timestamp of the owner's clock); the shared deadline sweep honours it.</summary>
    public long Deadline;

    /// <summary>Whether a dispatch has been handed this item (its timeout then says it may still be processed).</summary>
    public bool Dispatched;

    /// <summary>Items admitted after waiting for room carry their own deadline timer and are skipped by the shared sweep.</summary>
    public bool HasOwnDeadline => _ownDeadline is not null;

    public bool IsCompleted => Volatile.Read(ref _state) != Pending;

    public short Version => _core.Version;

    /// <summary>When the item was accepted (a timestamp of the owner's clock): its batch's MaxDelay counts from here.</summary>
    public long Arrival;

    /// <summary>The next item in a free list (this thread's, or the owner's).</summary>
    public BatchItem<TItem, TResult>? NextFree
    {
        get => _nextFree;
        set => _nextFree = value;
    }

    /// <summary>
    /// Takes an item from this thread's free list, else takes over the whole chain of items released to
    /// <paramref name="returned"/> (one exchange: no ABA), else makes a new one. Needs no lock.
    /// </summary>
    public static BatchItem<TItem, TResult> Rent(Batcher<TItem, TResult> owner, ref BatchItem<TItem, TResult>? returned)
    {
        var item = t_free;
        if (item is not null)
        {
            t_free = item._nextFree;
            t_freeCount = t_free is null ? 0 : Math.Max(t_freeCount - 1, 0);
        }
        else if ((item = FreeList.TakeAll(ref returned)) is not null)
        {
            // The rest of the chain becomes this thread's cache; counted as full, so releases go back to the owner meanwhile.
            t_free = item._nextFree;
            t_freeCount = t_free is null ? 0 : MaxThreadCache;
        }
        else
        {
            item = new BatchItem<TItem, TResult>();
        }

        item._nextFree = null;
        item._owner = owner;
        return item;
    }

    public void Initialize(TItem value, long deadline, CancellationToken token)
    {
        Value = value;
        Deadline = deadline;
        Dispatched = false;
        _token = token;
        _state = Pending;
        _owners = 2;
        if (token.CanBeCanceled)
        {
            // Registered before the item is visible to any dispatch, so the registration is always disposed
            // by the completion before the item can be recycled.
#if NET8_0_OR_GREATER
            _registration = token.UnsafeRegister(CancelCallback, this);
#else
            _registration = token.Register(CancelCallback, this);
#endif
        }
    }

    /// <summary>Gives a slow-path item (it waited for room) its own timer for what is left of its bound.</summary>
    public void ArmOwnDeadline(TimeProvider time, TimeSpan remaining, TimeSpan bound)
    {
        _ownBound = bound;
        _ownDeadline = time.CreateTimer(DeadlineCallback, this, remaining, System.Threading.Timeout.InfiniteTimeSpan);
    }

    public bool TrySetResult(TResult result)
    {
        if (Interlocked.CompareExchange(ref _state, Completed, Pending) != Pending)
        {
            return false;
        }

        Detach();
        _core.SetResult(result);
        return true;
    }

    public bool TrySetException(Exception exception)
    {
        if (Interlocked.CompareExchange(ref _state, Completed, Pending) != Pending)
        {
            return false;
        }

        Detach();
        _core.SetException(exception);
        return true;
    }

    /// <summary>The batcher lets go of the item (its batch is done with it, or it never entered one).</summary>
    public void ReleaseByBatcher() => ReleaseOwner();

    TResult IValueTaskSource<TResult>.GetResult(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            ReleaseOwner();
        }
    }

    ValueTaskSourceStatus IValueTaskSource<TResult>.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource<TResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    private void OnCallerCancelled() => TrySetException(new OperationCanceledException("The caller cancelled its wait for this batched item.", _token));

    private void OnOwnDeadline()
    {
        if (!IsCompleted && TrySetException(new BatchTimeoutException(_ownBound, Volatile.Read(ref Dispatched), dispatchTimedOut: false)))
        {
            _owner?.CountTimeout();
        }
    }

    private void Detach()
    {
        // Waits for a cancellation callback running on another thread (it lost the race and returns at once).
        _registration.Dispose();
        _registration = default;
        _ownDeadline?.Dispose();
        _ownDeadline = null;
    }

    private void ReleaseOwner()
    {
        if (Interlocked.Decrement(ref _owners) == 0)
        {
            Value = default!;
            _token = default;
            _core.Reset();
            var owner = _owner!;
            _owner = null;
            if (t_freeCount < MaxThreadCache)
            {
                _nextFree = t_free;
                t_free = this;
                t_freeCount++;
            }
            else
            {
                owner.ReturnItem(this);
            }
        }
    }
}
