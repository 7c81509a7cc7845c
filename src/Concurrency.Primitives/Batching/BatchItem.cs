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
    // _state: bit 0 is set once this use of the item is answered; the bits above count its uses, so that a claim made
    // for one use (a deadline timer's, whose callback may already be running when the timer is disposed) fails on a
    // later one.
    private const int CompletedBit = 1;
    private const int NextUse = 2;
    private const int MaxThreadCache = 256;

    private static readonly Action<object?> CancelCallback = static state => ((BatchItem<TItem, TResult>)state!).OnCallerCancelled();
    private static readonly TimerCallback DeadlineCallback = static state => ((OwnDeadline)state!).Fire();

    // A small free list per thread: a caller that awaits its result (GetResult releases the item) usually submits its
    // next item from the same thread, so most items are recycled without any synchronisation. Kept in a ThreadSlots
    // slot: a thread-static field of this generic type would cost a runtime helper call on every access.
    private static readonly int CacheSlot = ThreadSlots.Register();

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

    public bool IsCompleted => (Volatile.Read(ref _state) & CompletedBit) != 0;

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
        var cache = ThreadCache.Current();
        var item = cache.Head;
        if (item is not null)
        {
            cache.Head = item._nextFree;
            cache.Count = cache.Head is null ? 0 : Math.Max(cache.Count - 1, 0);
        }
        else if ((item = cache.TakeSpill() ?? FreeList.TakeAll(ref returned)) is not null)
        {
            // The rest of the chain becomes this thread's cache; counted as full, so releases spill meanwhile.
            cache.Head = item._nextFree;
            cache.Count = cache.Head is null ? 0 : MaxThreadCache;
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
        _state = (_state & ~CompletedBit) + NextUse;
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
        _ownDeadline = time.CreateTimer(DeadlineCallback, new OwnDeadline(this, Volatile.Read(ref _state)), remaining, System.Threading.Timeout.InfiniteTimeSpan);
    }

    public bool TrySetResult(TResult result)
    {
        if (!TryClaim(Volatile.Read(ref _state)))
        {
            return false;
        }

        Detach();
        _core.SetResult(result);
        return true;
    }

    public bool TrySetException(Exception exception) => TrySetException(Volatile.Read(ref _state), exception);

    /// <summary>
    /// Answers the item with <paramref name="exception"/> if it is still in the use whose pending state was
    /// <paramref name="use"/>. Every caller but a deadline timer holds the item for its current use.
    /// </summary>
    private bool TrySetException(int use, Exception exception)
    {
        if (!TryClaim(use))
        {
            return false;
        }

        Detach();
        _core.SetException(exception);
        return true;
    }

    /// <summary>Claims the answer for the use whose pending state is <paramref name="use"/> (the first claim wins).</summary>
    private bool TryClaim(int use) =>
        (use & CompletedBit) == 0 && Interlocked.CompareExchange(ref _state, use | CompletedBit, use) == use;

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

    /// <summary>The own-deadline timer's callback, for the use it was armed for: a late fire finds a later use and does nothing.</summary>
    private void OnOwnDeadline(int use)
    {
        if (Volatile.Read(ref _state) != use)
        {
            return; // answered, or already recycled into a later use
        }

        var owner = _owner;
        if (TrySetException(use, new BatchTimeoutException(_ownBound, Volatile.Read(ref Dispatched), dispatchTimedOut: false)))
        {
            owner?.CountTimeout();
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
        // Two owners let go once each; whoever is last recycles. Reading 1 means the other owner has let go (its
        // decrement was a full fence, so it no longer touches the item): the last one needs no atomic operation.
        if (Volatile.Read(ref _owners) != 1 && Interlocked.Decrement(ref _owners) != 0)
        {
            return;
        }

        Value = default!;
        _token = default;
        _core.Reset();

        // A pooled item keeps no batcher alive (thread caches outlive the batchers whose items they hold).
        var owner = _owner!;
        _owner = null;
        var cache = ThreadCache.Current();
        if (cache.Count < MaxThreadCache)
        {
            _nextFree = cache.Head;
            cache.Head = this;
            cache.Count++;
        }
        else
        {
            cache.Spill(this, owner);
        }
    }

    /// <summary>What an own-deadline timer fires for: the item and the use it was armed for.</summary>
    private sealed class OwnDeadline(BatchItem<TItem, TResult> item, int use)
    {
        public void Fire() => item.OnOwnDeadline(use);
    }

    /// <summary>
    /// One thread's free list of items, and the items it released past the list's size: these go back to their batcher
    /// as one chain of up to <see cref="MaxThreadCache"/> (one compare-and-swap per chain, not per item).
    /// </summary>
    private sealed class ThreadCache
    {
        public BatchItem<TItem, TResult>? Head;
        public int Count;
        private BatchItem<TItem, TResult>? _spill;
        private BatchItem<TItem, TResult>? _spillLast;
        private int _spilled;

        public static ThreadCache Current() => ThreadSlots.Get(CacheSlot) as ThreadCache ?? Create();

        /// <summary>Keeps a released item in the spill chain; hands the chain to <paramref name="owner"/> when it is full.</summary>
        public void Spill(BatchItem<TItem, TResult> item, Batcher<TItem, TResult> owner)
        {
            item._nextFree = _spill;
            _spill = item;
            _spillLast ??= item;
            if (++_spilled == MaxThreadCache)
            {
                owner.ReturnItems(_spill, _spillLast);
                _spill = _spillLast = null;
                _spilled = 0;
            }
        }

        /// <summary>Takes the spill chain (items this thread released and has not yet handed back).</summary>
        public BatchItem<TItem, TResult>? TakeSpill()
        {
            var spill = _spill;
            _spill = _spillLast = null;
            _spilled = 0;
            return spill;
        }

        private static ThreadCache Create()
        {
            var cache = new ThreadCache();
            ThreadSlots.Set(CacheSlot, cache);
            return cache;
        }
    }
}
