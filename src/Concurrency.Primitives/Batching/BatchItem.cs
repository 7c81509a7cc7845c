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

    // _owners: who still holds the item in its current use; the last to let go recycles it. Bits, not a count, so that a
    // second release by the same owner (a ValueTask consumed twice) changes nothing.
    private const int CallerOwns = 1;
    private const int BatcherOwns = 2;
    private const int SignallerOwns = 4;

    private static readonly Action<object?> CancelCallback = static state => ((BatchItem<TItem, TResult>)state!).OnCallerCancelled();
    private static readonly TimerCallback DeadlineCallback = static state => ((OwnDeadline)state!).Fire();

    // A small free list per thread: a caller that awaits its result (GetResult releases the item) usually submits its
    // next item from the same thread, so most items are recycled without any synchronisation. Kept in a ThreadSlots
    // slot: a thread-static field of this generic type would cost a runtime helper call on every access.
    private static readonly int CacheSlot = ThreadSlots.Register();

    private Batcher<TItem, TResult>? _owner;

    // One field, two roles that never overlap: while the item is pooled, the next item in a free list (NextFree); while
    // it is in use, from Rent (which clears it) until its last owner lets go, the loop whose batch holds it (Tracker). A
    // reader of Tracker always holds the item (the cut, as its batcher; a caller giving up, as its signaller), so the
    // item cannot be pooled under it. Sharing it keeps the item at the size it had before abandoned dispatches were
    // tracked: every item is touched by three threads (submitter, loop, awaiter), and at batch size 1 the item's bytes
    // are the cost.
    private object? _link;
    private ManualResetValueTaskSourceCore<TResult> _core;
    private int _state;
    private int _owners;
    private CancellationToken _token;
    private CancellationTokenRegistration _registration;
    private ITimer? _ownDeadline;

    // Under the systematic tests, continuations run inline from the completing thread, each on a task it starts: the
    // thread pool's own queue (where RunContinuationsAsynchronously puts them) is outside the Coyote scheduler's control.
    private BatchItem() => _core.RunContinuationsAsynchronously = !PoolWorkItem.UseTaskScheduling;

    public TItem Value = default!;

    /// <summary>When the caller's bound passes (a timestamp of the owner's clock); the shared deadline sweep honours it.</summary>
    public long Deadline;

    /// <summary>Whether a dispatch has been handed this item (its timeout then says it may still be processed).</summary>
    public bool Dispatched;

    /// <summary>Items admitted after waiting for room carry their own deadline timer and are skipped by the shared sweep.</summary>
    public bool HasOwnDeadline => _ownDeadline is not null;

    public bool IsCompleted => (Volatile.Read(ref _state) & CompletedBit) != 0;

    /// <summary>Which use of the item this is (its pending state): an answer given for one use fails on a later one.</summary>
    public int Use => Volatile.Read(ref _state) & ~CompletedBit;

    public short Version => _core.Version;

    /// <summary>When the item was accepted (a timestamp of the owner's clock): its batch's MaxDelay counts from here.</summary>
    public long Arrival;

    /// <summary>
    /// The ring index this use of the item was published at, written before the cell: a cell holds a published item for
    /// an index only if the item it refers to carries that index (a cell is never cleared; a later lap overwrites it).
    /// </summary>
    public long RingIndex = -1;

    /// <summary>
    /// The loop whose batch holds this item, written when the batch is cut, only for an item whose caller can give up on
    /// its own (a cancellable token, or its own deadline timer): the caller's giving up is then counted against the
    /// batch's live callers (see <see cref="Batcher{TItem, TResult}"/>'s abandoned dispatches). <see langword="null"/>
    /// when a use begins (<see cref="Rent"/> clears the field it shares with <see cref="NextFree"/>).
    /// </summary>
    public BatchCore<TItem, TResult>? Tracker => Volatile.Read(ref _link) as BatchCore<TItem, TResult>;

    /// <summary>Records the loop whose batch holds this item (see <see cref="Tracker"/>); after the epoch.</summary>
    public void TrackIn(BatchCore<TItem, TResult> core) => Volatile.Write(ref _link, core);

    /// <summary>The batch (the loop's epoch) <see cref="Tracker"/> refers to; written before it.</summary>
    public int TrackedEpoch;

    /// <summary>1 once this use's giving up has been counted against its batch (by its caller's side or by the cut).</summary>
    public int GoneCounted;

    /// <summary>Whether the caller of this use can give up on its own: a cancellable token, or its own deadline timer.</summary>
    public bool CanGiveUp => _token.CanBeCanceled || _ownDeadline is not null;

    /// <summary>The next item in a free list (this thread's, or the owner's).</summary>
    public BatchItem<TItem, TResult>? NextFree
    {
        get => (BatchItem<TItem, TResult>?)_link;
        set => _link = value;
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
            cache.Head = item.NextFree;
            cache.Count = cache.Head is null ? 0 : Math.Max(cache.Count - 1, 0);
        }
        else if ((item = cache.TakeSpill() ?? FreeList.TakeAll(ref returned)) is not null)
        {
            // The rest of the chain becomes this thread's cache; counted as full, so releases spill meanwhile.
            cache.Head = item.NextFree;
            cache.Count = cache.Head is null ? 0 : MaxThreadCache;
        }
        else
        {
            item = new BatchItem<TItem, TResult>();
        }

        item._link = null; // no longer NextFree; not yet Tracker
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
        _owners = CallerOwns | BatcherOwns;
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
        _ownDeadline = time.CreateTimer(DeadlineCallback, new OwnDeadline(this, Volatile.Read(ref _state), bound), remaining, System.Threading.Timeout.InfiniteTimeSpan);
    }

    public bool TrySetResult(TResult result) => TrySetResult(Volatile.Read(ref _state), result);

    /// <summary>Answers the item if it is still in <paramref name="use"/> and unanswered (the first answer wins).</summary>
    public bool TrySetResult(int use, TResult result)
    {
        if (!TryClaim(use))
        {
            return false;
        }

        Detach();
        _core.SetResult(result);
        return true;
    }

    /// <summary>Fails the item's current use (the first answer wins). For the dispatch and for the batcher under its lock.</summary>
    public bool TrySetException(Exception exception) => TrySetException(Volatile.Read(ref _state), exception);

    /// <summary>Fails the item if it is still in <paramref name="use"/> and unanswered (the first answer wins).</summary>
    public bool TrySetException(int use, Exception exception)
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
    public void ReleaseByBatcher() => ReleaseOwner(BatcherOwns);

    TResult IValueTaskSource<TResult>.GetResult(short token)
    {
        // Only the consuming call lets go. A stale token, a read before the answer, or a second read of the same answer
        // (a ValueTask consumed twice) throws and leaves the item alone: it may already be serving another caller.
        if (_core.GetStatus(token) == ValueTaskSourceStatus.Pending) // a stale token throws here
        {
            return _core.GetResult(token); // throws InvalidOperationException
        }

        if ((Volatile.Read(ref _owners) & CallerOwns) == 0)
        {
            throw new InvalidOperationException("This batched item's result has already been read: a ValueTask returned by SubmitAsync may be awaited only once.");
        }

        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            ReleaseOwner(CallerOwns);
        }
    }

    ValueTaskSourceStatus IValueTaskSource<TResult>.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource<TResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
    {
        if (PoolWorkItem.UseTaskScheduling)
        {
            _core.OnCompleted(static box => ((ScheduledContinuation)box!).Start(), new ScheduledContinuation(continuation, state), token, flags);
            return;
        }

        _core.OnCompleted(continuation, state, token, flags);
    }

    private void OnCallerCancelled() => TryFailOffPath(Volatile.Read(ref _state), new OperationCanceledException("The caller cancelled its wait for this batched item.", _token));

    /// <summary>The own-deadline timer's callback, for the use it was armed for: a late fire finds a later use and does nothing.</summary>
    private void OnOwnDeadline(int use, TimeSpan bound)
    {
        if (Volatile.Read(ref _state) != use)
        {
            return; // answered, or already recycled into a later use
        }

        var owner = _owner;
        if (TryFailOffPath(use, new BatchTimeoutException(bound, Volatile.Read(ref Dispatched), dispatchTimedOut: false)))
        {
            owner?.CountTimeout();
        }
    }

    /// <summary>
    /// Fails the item from a thread that holds neither of its owners (the caller's cancellation callback, the own
    /// deadline timer): the winner of the claim holds the item as a third owner until its answer has been signalled. The
    /// caller can read the answer before the signal is over (the core marks itself completed first, then looks for a
    /// continuation); without that hold, the caller and the batcher could both let go and the item be reset and reused
    /// under the signal. Answers from the dispatch and from the batcher's lock need no hold: the batcher lets go of a
    /// dispatched item only after its dispatch has returned, and of any other item only under its lock.
    /// </summary>
    private bool TryFailOffPath(int use, Exception exception)
    {
        if (!TryClaim(use))
        {
            return false;
        }

        // The caller cannot have let go (its answer is not there yet), so the item is still in this use.
        AtomicBits.Set(ref _owners, SignallerOwns);
        var owner = _owner;
        Detach();
        _core.SetException(exception);

        // A caller that gives up while its batch is cut or dispatched counts against the batch's live callers (read after
        // the claim's fence: the cut writes it, then fences, then looks at the claims; one of the two sees the other).
        if (Tracker is { } tracker)
        {
            owner?.OnCallerGone(tracker, this);
        }

        ReleaseOwner(SignallerOwns);
        return true;
    }

    private void Detach()
    {
        // Waits for a cancellation callback running on another thread (it lost the race and returns at once).
        _registration.Dispose();
        _registration = default;
        _ownDeadline?.Dispose();
        _ownDeadline = null;
    }

    private void ReleaseOwner(int releasing)
    {
        // The caller and the batcher (and, while an off-path answer is signalled, its signaller: see TryFailOffPath) let
        // go once each; whoever is last recycles. Reading only its own bit means every other owner has let go (each
        // release was a full fence, so none of them touches the item any more): the last one needs no atomic operation.
        if (Volatile.Read(ref _owners) != releasing && AtomicBits.Clear(ref _owners, releasing) != releasing)
        {
            return; // others still hold it (or this owner had already let go)
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
            _link = cache.Head;
            cache.Head = this;
            cache.Count++;
        }
        else
        {
            cache.Spill(this, owner);
        }
    }

    /// <summary>A continuation started as a task (the systematic tests' scheduling; see the constructor).</summary>
    private sealed class ScheduledContinuation(Action<object?> continuation, object? state)
    {
        public void Start() => _ = Task.Factory.StartNew(continuation, state, CancellationToken.None, TaskCreationOptions.DenyChildAttach, TaskScheduler.Default);
    }

    /// <summary>
    /// What an own-deadline timer fires for: the item, the use it was armed for, and the caller's bound (for its
    /// exception; kept here, not on every item, since only items that waited for room have such a timer).
    /// </summary>
    private sealed class OwnDeadline(BatchItem<TItem, TResult> item, int use, TimeSpan bound)
    {
        public void Fire() => item.OnOwnDeadline(use, bound);
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
            item._link = _spill;
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
