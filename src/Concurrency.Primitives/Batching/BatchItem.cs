using System;
using System.Runtime.ExceptionServices;
using System.Threading;
using System.Threading.Tasks;
using System.Threading.Tasks.Sources;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary>
/// One submitted item and its caller's wait: a pooled <see cref="IValueTaskSource{TResult}"/> with a completion core of
/// its own. It completes exactly once (a compare-and-swap of its state word decides between the dispatch, the caller's
/// token, the deadline and the sweep), and goes back to its batcher's pool only when its owners, the caller (after
/// reading its result) and the batcher (once its batch is done with it), have let go. The version guards a recycled
/// item against a stale <see cref="ValueTask{TResult}"/>.
/// </summary>
/// <remarks>
/// One atomic operation per answer: the claim. A caller that awaits before the answer registers its continuation in the
/// same state word (its Awaited bit), so the claim that wins also learns whether a continuation waits; the answer is then
/// written and published with a plain release write of the completion flag, and the caller sees it only after that
/// write (<see cref="IValueTaskSource{TResult}.GetStatus"/> reports pending until then). A caller that comes to await
/// between the claim and that write finds the claim and waits out those few instructions, then runs its continuation off
/// its own stack. The thread that answers reads what it needs (the continuation, its state and context) before it
/// publishes, and touches the item no more after: so a dispatch's answer can let go of the batcher's ownership in its
/// claim (see <see cref="TrySetResult(int, TResult, bool)"/>), and the caller that reads the answer last recycles the
/// item without an atomic operation.
/// </remarks>
internal sealed class BatchItem<TItem, TResult> : IValueTaskSource<TResult>, IFreeListNode<BatchItem<TItem, TResult>>
{
    // _state, one word per use of the item: bit 0 is set once this use is answered (claimed); bits 1-3 say who still holds
    // the item (the last to let go recycles it; bits, not a count, so that a second release by the same owner changes
    // nothing); bit 4 is set on a recycled item left in its ring cell for the cell's next index (see InCell), never on a
    // pooled one; bit 5 is set when the caller's continuation was registered before the claim (see OnCompleted); the bits
    // above count the item's uses, so that a claim made for one use (a deadline timer's, whose callback may already be
    // running when the timer is disposed; a dispatch's answer through a stale batch) fails on a later one.
    private const int CompletedBit = 1;
    private const int CallerOwns = 2;
    private const int BatcherOwns = 4;
    private const int SignallerOwns = 8;
    private const int OwnerBits = CallerOwns | BatcherOwns | SignallerOwns;
    private const int KeptInCell = 16;
    private const int AwaitedBit = 32;
    private const int NextUse = 64;
    private const int UseBits = ~(CompletedBit | OwnerBits | KeptInCell | AwaitedBit);
    private const int MaxThreadCache = 256;

    // Under the systematic tests, continuations run inline from the completing thread, each on a task it starts: the
    // thread pool's own queue is outside the Coyote scheduler's control.
    private static bool RunContinuationsAsynchronously => !PoolWorkItem.UseTaskScheduling;

    private static readonly Action<object?> CancelCallback = static state => ((BatchItem<TItem, TResult>)state!).OnCallerCancelled();
    private static readonly TimerCallback DeadlineCallback = static state => ((OwnDeadline)state!).Fire();

    // A small free list per thread: a caller that awaits its result (GetResult releases the item) usually submits its
    // next item from the same thread, so most items are recycled without any synchronisation. Kept in a ThreadSlots
    // slot: a thread-static field of this generic type would cost a runtime helper call on every access. The slot is
    // taken on first use, not in this type's static constructor: a systematic scheduler (the Coyote tests) may pause a
    // thread at the registration's atomic step, and a pause inside a static constructor holds the type's initialisation
    // lock, so another thread touching the type blocks where the scheduler cannot see it (a false hang).
    private static int s_cacheSlotPlusOne;

    /// <summary>This instantiation's thread slot (registered by the first caller; a racing registration's slot is left unused).</summary>
    private static int CacheSlot => Volatile.Read(ref s_cacheSlotPlusOne) is var taken and not 0 ? taken - 1 : TakeCacheSlot();

    private static int TakeCacheSlot()
    {
        Interlocked.CompareExchange(ref s_cacheSlotPlusOne, ThreadSlots.Register() + 1, 0);
        return Volatile.Read(ref s_cacheSlotPlusOne) - 1;
    }

    // Field order matters here: the runtime lays out an object's references first, in the order declared, then its other
    // fields by size. What the submit, the loop's cut and answer, and the reader touch for every item (the state word, the
    // result, the value, the bounds, the continuation) thus lies together after the references; what only a cancellable
    // token, an own deadline timer or a captured context needs lives in a side object (Extras, made on first need and kept
    // with the pooled item), so that the hot fields span fewer cache lines, each of them moved between three threads.
    private Batcher<TItem, TResult>? _owner;

    // One field, two roles that never overlap: while the item is pooled, the next item in a free list (NextFree); while
    // it is in use, from Rent (which clears it) until its last owner lets go, the loop whose batch holds it (Tracker). A
    // reader of Tracker always holds the item (the cut, as its batcher; a caller giving up, as its signaller), so the
    // item cannot be pooled under it. Sharing it keeps the item at the size it had before abandoned dispatches were
    // tracked: every item is touched by three threads (submitter, loop, awaiter), and at batch size 1 the item's bytes
    // are the cost.
    private object? _link;

    // What only some uses need: the caller's token and its registration, an own deadline timer, a captured context. Read
    // only where the flags below say it holds something (they are on the hot lines; it is not).
    private Extras? _extras;

    // The completion core. _continuation and _continuationState are written by a caller that awaits before the answer,
    // then the Awaited bit is set in _state (see OnCompleted); the claim that answers reads that bit. _result and _error
    // are written after the claim, then _completed publishes them (a release write); the caller reads them only after
    // it. _continuation is the last reference declared, so that it lies next to the state word's group.
    private object? _continuationState;
    private ExceptionDispatchInfo? _error;
    private Action<object?>? _continuation;
    private int _state;
    private TResult _result = default!;
    private short _version;
    private bool _completed;

    // Whether this use's caller has a cancellable token (registered in Extras), an own deadline timer (in Extras, until the
    // answer detaches it), and whether its await captured a context or scheduler (in Extras).
    private bool _cancellable;
    private bool _ownTimer;
    private bool _captured;

    private BatchItem()
    {
    }

    public TItem Value = default!;

    /// <summary>When the caller's bound passes (a timestamp of the owner's clock); the shared deadline sweep honours it.</summary>
    public long Deadline;

    /// <summary>Items admitted after waiting for room carry their own deadline timer and are skipped by the shared sweep.</summary>
    public bool HasOwnDeadline => _ownTimer;

    public bool IsCompleted => (Volatile.Read(ref _state) & CompletedBit) != 0;

    /// <summary>
    /// Whether the item is free in its ring cell for the index a ring's length after <paramref name="lastIndex"/>: recycled
    /// and left in the cell (not pooled) after its use at <paramref name="lastIndex"/>. Read only by the submit that
    /// claimed that next index, of the item the cell holds (a cell can still refer to an item that has since been pooled
    /// or left in another cell: the flag and the index rule both out). One read of the state word: a pooled item, or one
    /// in use, never carries the flag.
    /// </summary>
    public bool InCell(long lastIndex) =>
        (Volatile.Read(ref _state) & (OwnerBits | KeptInCell)) == KeptInCell && Volatile.Read(ref RingIndex) == lastIndex;

    /// <summary>
    /// Begins the next use of an item <see cref="InCell"/> found free in its cell (no pool, no allocation; its owner stays
    /// set): clears its link (a tracker left by its last use), as <see cref="Rent"/> does. That write, on the item's first
    /// line, also matters for speed: measured, without it the dispatch's
    /// publish, on that line, waited for it far longer (the `phases` harness's drain, 100,000 items: 101-119 ns per item
    /// against 26-35).
    /// </summary>
    public void ReuseInCell() => _link = null;

    /// <summary>Which use of the item this is: an answer given for one use fails on a later one.</summary>
    public int Use => Volatile.Read(ref _state) & UseBits;

    /// <summary>This use's number if it is not answered yet, else <see cref="Answered"/> (one read of the state word).</summary>
    public int PendingUse => Volatile.Read(ref _state) is var state && (state & CompletedBit) == 0 ? state & UseBits : Answered;

    /// <summary>What <see cref="PendingUse"/> returns for an answered item: odd, which no use number is.</summary>
    public const int Answered = CompletedBit;

    /// <summary>Whether the item is in <paramref name="use"/> and that use is not answered yet (one read of the state word).</summary>
    public bool IsPendingIn(int use) => (Volatile.Read(ref _state) & (UseBits | CompletedBit)) == use;

    public short Version => _version;

    /// <summary>When the item was accepted (a timestamp of the owner's clock): its batch's MaxDelay counts from here.</summary>
    public long Arrival;

    /// <summary>
    /// The ring index this use of the item was published at, written before the cell: a cell holds a published item for
    /// an index only if the item it refers to carries that index (a cell is never cleared; a later lap overwrites it).
    /// -1 while its caller waits for room (see <see cref="MarkParked"/>).
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
    public bool CanGiveUp => _cancellable || _ownTimer;

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
        _state = ((_state & UseBits) + NextUse) | CallerOwns | BatcherOwns;
        if (token.CanBeCanceled)
        {
            // Registered before the item is visible to any dispatch, so the registration is always disposed
            // by the completion before the item can be recycled.
            var extras = _extras ??= new Extras();
            extras.Token = token;
            _cancellable = true;
#if NET8_0_OR_GREATER
            extras.Registration = token.UnsafeRegister(CancelCallback, this);
#else
            extras.Registration = token.Register(CancelCallback, this);
#endif
        }
    }

    /// <summary>Gives a slow-path item (it waited for room) its own timer for what is left of its bound.</summary>
    public void ArmOwnDeadline(TimeProvider time, TimeSpan remaining, TimeSpan bound)
    {
        var extras = _extras ??= new Extras();
        extras.OwnDeadline = time.CreateTimer(DeadlineCallback, new OwnDeadline(this, Use, bound), remaining, System.Threading.Timeout.InfiniteTimeSpan);
        _ownTimer = true;
    }

    public bool TrySetResult(TResult result) => TrySetResult(Use, result);

    /// <summary>
    /// Answers the item if it is still in <paramref name="use"/> and unanswered (the first answer wins). With
    /// <paramref name="releaseBatcher"/>, the claim also lets go of the batcher's ownership: for the dispatch's answers,
    /// whose batch then skips the item when it finishes (see <see cref="ReleaseByBatcher(int)"/>).
    /// </summary>
    public bool TrySetResult(int use, TResult result, bool releaseBatcher = false)
    {
        if (!TryClaim(use, releaseBatcher ? BatcherOwns : 0, out var awaited))
        {
            return false;
        }

        Detach();
        _result = result;
        Publish(awaited);
        return true;
    }

    /// <summary>Fails the item's current use (the first answer wins). For the dispatch and for the batcher under its lock.</summary>
    public bool TrySetException(Exception exception) => TrySetException(Use, exception);

    /// <summary>Fails the item if it is still in <paramref name="use"/> and unanswered (the first answer wins); see <see cref="TrySetResult(int, TResult, bool)"/>.</summary>
    public bool TrySetException(int use, Exception exception, bool releaseBatcher = false) =>
        TryFail(use, releaseBatcher ? BatcherOwns : 0, exception, bound: default);

    /// <summary>
    /// Fails the item with a <see cref="BatchTimeoutException"/> for <paramref name="bound"/> if it is still in
    /// <paramref name="use"/> and unanswered (for the deadline sweep). Whether it was dispatched is read after the claim,
    /// whose compare-and-swap is a full fence (see <see cref="TimedOut"/>).
    /// </summary>
    public bool TryTimeOut(int use, TimeSpan bound) => TryFail(use, releasing: 0, exception: null, bound);

    /// <summary>
    /// Claims <paramref name="use"/>'s answer (letting go of <paramref name="releasing"/>) and fails it with
    /// <paramref name="exception"/>, or, with none, with the timeout for <paramref name="bound"/>, made after the claim.
    /// </summary>
    private bool TryFail(int use, int releasing, Exception? exception, TimeSpan bound)
    {
        if (!TryClaim(use, releasing, out var awaited))
        {
            return false;
        }

        Detach();
        _error = ExceptionDispatchInfo.Capture(exception ?? TimedOut(bound));
        Publish(awaited);
        return true;
    }

    /// <summary>
    /// The exception for a caller whose <paramref name="bound"/> passed, made only after this use's answer was claimed:
    /// the item was dispatched if a cut has moved the ring's head past its index. A cut moves the head (a
    /// compare-and-swap), then looks at the answers of the items it passed, leaving out those answered; a deadline claims,
    /// then reads the head here. One of the two sees the other: a deadline that finds the head not yet past the item
    /// claimed before any cut's look, which leaves the item out, so "never dispatched" holds; one that finds it past says
    /// the item may be processed, which is exact when it claimed after the look and the safe side when the cut saw its
    /// claim and left the item out. An item waiting for room has no index yet (-1, see <see cref="MarkParked"/>) until
    /// it is admitted; one admitted after this claim is seen answered by its cut. Read before the claim, the head could
    /// say "not cut" while a cut, not yet seeing the claim, hands the item on: the caller would be told "never
    /// dispatched" of an item its dispatch then receives.
    /// </summary>
    private BatchTimeoutException TimedOut(TimeSpan bound)
    {
        var index = Volatile.Read(ref RingIndex);
        var dispatched = index >= 0 && _owner is { } owner && index < owner.CutIndex;
        return new BatchTimeoutException(bound, dispatched, dispatchTimedOut: false);
    }

    /// <summary>
    /// Clears the ring index of an item that waits for room (it has none until it is admitted; the one it holds is its
    /// last use's), before its own deadline timer is armed: see <see cref="TimedOut"/>. The cell of that last index, if it
    /// still refers to the item, no longer counts it as published there, as no cut ever reads an index it passed.
    /// </summary>
    public void MarkParked() => Volatile.Write(ref RingIndex, -1);

    /// <summary>
    /// Claims the answer for <paramref name="use"/> (the first claim wins), letting go of the owners in
    /// <paramref name="releasing"/> in the same step. Until the answer is published, no owner can let go on its own (the
    /// caller reads nothing before it; the batcher and a signaller let go only after an answer), so the bits are stable.
    /// <paramref name="awaited"/> says whether the caller's continuation was registered before the claim: once the claim
    /// is made, none can be (see OnCompleted), so the bit is final.
    /// </summary>
    private bool TryClaim(int use, int releasing, out bool awaited)
    {
        var state = Volatile.Read(ref _state);
        while ((state & (UseBits | CompletedBit)) == use)
        {
            var seen = Interlocked.CompareExchange(ref _state, (state | CompletedBit) & ~releasing, state);
            if (seen == state)
            {
                awaited = (state & AwaitedBit) != 0;
                return true;
            }

            state = seen;
        }

        awaited = false;
        return false;
    }

    /// <summary>The batcher lets go of the item it still holds (an item that never entered a batch, or was answered under its lock).</summary>
    public void ReleaseByBatcher() => Release(BatcherOwns, Use);

    /// <summary>
    /// The batcher lets go of the item's <paramref name="use"/> if it still holds it: a dispatch's answer let go already,
    /// and the item may then be recycled and serving another caller (a later use), which this leaves alone.
    /// </summary>
    public void ReleaseByBatcher(int use) => Release(BatcherOwns, use);

    TResult IValueTaskSource<TResult>.GetResult(short token)
    {
        // Only the consuming call lets go. A stale token, a read before the answer, or a second read of the same answer
        // (a ValueTask consumed twice) throws and leaves the item alone: it may already be serving another caller.
        ValidateToken(token);
        if (!IsPublished)
        {
            throw new InvalidOperationException("This batched item's result is not available yet: await the ValueTask returned by SubmitAsync instead of reading its result before it completes.");
        }

        var state = Volatile.Read(ref _state);
        if ((state & CallerOwns) == 0)
        {
            throw new InvalidOperationException("This batched item's result has already been read: a ValueTask returned by SubmitAsync may be awaited only once.");
        }

        var error = _error;
        var result = _result;
        Release(CallerOwns, state & UseBits); // the caller holds the item: its use cannot change under it
        error?.Throw();
        return result;
    }

    ValueTaskSourceStatus IValueTaskSource<TResult>.GetStatus(short token)
    {
        ValidateToken(token);
        return !IsPublished ? ValueTaskSourceStatus.Pending
            : _error is null ? ValueTaskSourceStatus.Succeeded
            : _error.SourceException is OperationCanceledException ? ValueTaskSourceStatus.Canceled
            : ValueTaskSourceStatus.Faulted;
    }

    void IValueTaskSource<TResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
    {
        Guard.NotNull(continuation);
        ValidateToken(token);
        if (PoolWorkItem.UseTaskScheduling)
        {
            state = new ScheduledContinuation(continuation, state);
            continuation = static box => ((ScheduledContinuation)box!).Start();
        }

        if ((flags & ValueTaskSourceOnCompletedFlags.FlowExecutionContext) != 0)
        {
            (_extras ??= new Extras()).ExecutionContext = ExecutionContext.Capture();
            _captured = true;
        }

        if ((flags & ValueTaskSourceOnCompletedFlags.UseSchedulingContext) != 0)
        {
            if (SynchronizationContext.Current is { } context && context.GetType() != typeof(SynchronizationContext))
            {
                (_extras ??= new Extras()).Scheduler = context;
                _captured = true;
            }
            else if (TaskScheduler.Current != TaskScheduler.Default)
            {
                (_extras ??= new Extras()).Scheduler = TaskScheduler.Current;
                _captured = true;
            }
        }

        // The continuation first, then the bit: a claim that sees the bit finds the continuation (and its context).
        var word = Volatile.Read(ref _state);
        if ((word & CompletedBit) == 0)
        {
            if ((word & AwaitedBit) != 0)
            {
                throw AlreadyAwaited();
            }

            _continuation = continuation;
            _continuationState = state;
            while (true)
            {
                var seen = Interlocked.CompareExchange(ref _state, word | AwaitedBit, word);
                if (seen == word)
                {
                    return; // registered: the claim that answers sees the bit and runs it
                }

                word = seen;
                if ((word & AwaitedBit) != 0)
                {
                    throw AlreadyAwaited();
                }

                if ((word & CompletedBit) != 0)
                {
                    break; // claimed meanwhile: that answer did not see the continuation
                }
            }
        }
        else if ((word & AwaitedBit) != 0)
        {
            throw AlreadyAwaited();
        }

        // Claimed, not registered: the answer is being written (a few instructions from the claim to the publishing write).
        var spinner = default(SpinWait);
        while (!IsPublished)
        {
            spinner.SpinOnce();
        }

        // Answered already: the continuation never runs on the awaiting thread's stack.
        Schedule(continuation, state, forceAsync: true);

        static InvalidOperationException AlreadyAwaited() =>
            new("This batched item is already awaited: a ValueTask returned by SubmitAsync may be awaited only once.");
    }

    /// <summary>Whether the answer is published (the publishing write has happened; before it the caller sees it pending).</summary>
    private bool IsPublished => Volatile.Read(ref _completed);

    private void ValidateToken(short token)
    {
        if (token != _version)
        {
            throw new InvalidOperationException("This ValueTask's batched item has already been read and reused: a ValueTask returned by SubmitAsync may be awaited only once.");
        }
    }

    /// <summary>
    /// Publishes the answer written just before, by the claim's winner: a release write of the completion flag, no atomic
    /// operation. If the caller's continuation was registered before the claim (<paramref name="awaited"/>), it and its
    /// context are read first, then the flag is written, then the continuation is run: after the write this thread
    /// touches the item no more (its caller may read the answer and recycle it at once).
    /// </summary>
    private void Publish(bool awaited)
    {
        if (!awaited)
        {
            Volatile.Write(ref _completed, true);
            return;
        }

        var continuation = _continuation!;
        var state = _continuationState;
        var extras = _captured ? _extras : null;
        var executionContext = extras?.ExecutionContext;
        var scheduler = extras?.Scheduler;
        Volatile.Write(ref _completed, true);
        Schedule(continuation, state, executionContext, scheduler, forceAsync: false);
    }

    /// <summary>Runs the continuation of an await that found the answer in: see <see cref="Schedule(Action{object?}, object?, ExecutionContext?, object?, bool)"/>.</summary>
    private void Schedule(Action<object?> continuation, object? state, bool forceAsync)
    {
        var extras = _captured ? _extras : null;
        Schedule(continuation, state, extras?.ExecutionContext, extras?.Scheduler, forceAsync);
    }

    /// <summary>Runs the caller's continuation as it asked: in its captured context or scheduler, off this thread unless the systematic tests run.</summary>
    private static void Schedule(Action<object?> continuation, object? state, ExecutionContext? executionContext, object? scheduler, bool forceAsync)
    {
        if (executionContext is null && scheduler is null)
        {
            if (forceAsync || RunContinuationsAsynchronously)
            {
#if NET8_0_OR_GREATER
                ThreadPool.UnsafeQueueUserWorkItem(continuation, state, preferLocal: true);
#else
                _ = Task.Factory.StartNew(continuation, state, CancellationToken.None, TaskCreationOptions.DenyChildAttach, TaskScheduler.Default);
#endif
            }
            else
            {
                continuation(state);
            }

            return;
        }

        // The rare paths (a flowed execution context, a synchronization context or a scheduler) allocate, as the runtime's own core does.
        var work = new ContextContinuation(continuation, state, scheduler);
        if (executionContext is null)
        {
            work.Run(forceAsync || RunContinuationsAsynchronously);
        }
        else if (forceAsync || RunContinuationsAsynchronously)
        {
            _ = Task.Factory.StartNew(static box => ((ContextContinuation)box!).RunIn(), work.With(executionContext), CancellationToken.None, TaskCreationOptions.DenyChildAttach, TaskScheduler.Default);
        }
        else
        {
            work.With(executionContext).RunIn();
        }
    }

    private void OnCallerCancelled() => TryFailOffPath(Use, new OperationCanceledException("The caller cancelled its wait for this batched item.", _extras!.Token));

    /// <summary>The own-deadline timer's callback, for the use it was armed for: a late fire finds a later use and does nothing.</summary>
    private void OnOwnDeadline(int use, TimeSpan bound)
    {
        if (!IsPendingIn(use))
        {
            return; // answered, or already recycled into a later use
        }

        var owner = _owner;
        if (TryFailOffPath(use, exception: null, bound))
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
    /// dispatched item only after its dispatch has returned, and of any other item only under its lock. With no
    /// <paramref name="exception"/>, the caller's <paramref name="bound"/> passed: its <see cref="BatchTimeoutException"/>
    /// is made after the claim, as <see cref="TryTimeOut"/> makes it.
    /// </summary>
    private bool TryFailOffPath(int use, Exception? exception, TimeSpan bound = default)
    {
        if (!TryClaim(use, releasing: 0, out var awaited))
        {
            return false;
        }

        // The caller cannot have let go (its answer is not there yet), so the item is still in this use.
        AtomicBits.Set(ref _state, SignallerOwns);
        var owner = _owner;
        Detach();
        _error = ExceptionDispatchInfo.Capture(exception ?? TimedOut(bound)); // after the claim: see TryTimeOut
        Publish(awaited);

        // A caller that gives up while its batch is cut or dispatched counts against the batch's live callers (read after
        // the claim's fence: the cut writes it, then fences, then looks at the claims; one of the two sees the other).
        if (Tracker is { } tracker)
        {
            owner?.OnCallerGone(tracker, this);
        }

        Release(SignallerOwns, use);
        return true;
    }

    private void Detach()
    {
        if (!_cancellable && !_ownTimer)
        {
            return; // nothing registered (the usual case): no writes to the item's lines
        }

        // Waits for a cancellation callback running on another thread (it lost the race and returns at once).
        var extras = _extras!;
        extras.Registration.Dispose();
        extras.Registration = default;
        extras.OwnDeadline?.Dispose();
        extras.OwnDeadline = null;
        _ownTimer = false;
    }

    /// <summary>
    /// The owner <paramref name="releasing"/> lets go of the item's <paramref name="use"/>, if it still holds it in that
    /// use (a second release by the same owner, or one for a use the item has left, changes nothing). The caller and the
    /// batcher (and, while an off-path answer is signalled, its signaller: see TryFailOffPath) let go once each; whoever is
    /// last recycles. Seeing only its own bit means every other owner has let go (each release was a full fence, so none
    /// of them touches the item any more): the last one needs no atomic operation.
    /// </summary>
    private void Release(int releasing, int use)
    {
        var state = Volatile.Read(ref _state);
        while ((state & UseBits) == use && (state & releasing) != 0)
        {
            if ((state & OwnerBits) == releasing)
            {
                Recycle(state);
                return;
            }

            var seen = Interlocked.CompareExchange(ref _state, state & ~releasing, state);
            if (seen == state)
            {
                return; // others still hold it
            }

            state = seen;
        }
    }

    /// <summary>
    /// Resets the item (its last owner letting go: the use stays answered, so a late claim for it fails), then leaves it in
    /// its ring cell for the cell's next index if its batcher keeps it there (see <see cref="Batcher{TItem, TResult}.KeepsInCell"/>),
    /// else pools it.
    /// </summary>
    private void Recycle(int state)
    {
        var owner = _owner!;
        if (owner.KeepsInCell(this))
        {
            // Reset first; the state word last, with the flag: the submit that reuses the item reads that word first (see InCell).
            Reset(); // its link (a tracker, at most) is cleared when its next use begins (ReuseInCell), as a rent clears it
            Volatile.Write(ref _state, (state & (UseBits | CompletedBit)) | KeptInCell);
            return;
        }

        _state = state & (UseBits | CompletedBit);
        Reset();

        // A pooled item keeps no batcher alive (thread caches outlive the batchers whose items they hold).
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

    /// <summary>Clears what one use left (value, token, answer, continuation) and moves the version on: a stale value task is refused.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private void Reset()
    {
        Value = default!;
        _version++;
        _completed = false;
        _result = default!;
        _error = null;
        _continuationState = null;
        _continuation = null;
        if (_cancellable || _captured)
        {
            var extras = _extras!;
            extras.Token = default;
            extras.ExecutionContext = null;
            extras.Scheduler = null;
            _cancellable = false;
            _captured = false;
        }
    }

    /// <summary>
    /// What only some uses of an item need (a cancellable token and its registration, an own deadline timer, a captured
    /// context or scheduler): made the first time a use needs it and kept with the item, so that it costs nothing per item
    /// once the pool is warm, and is off the lines every use touches.
    /// </summary>
    private sealed class Extras
    {
        public CancellationToken Token;
        public CancellationTokenRegistration Registration;
        public ITimer? OwnDeadline;
        public ExecutionContext? ExecutionContext;
        public object? Scheduler;
    }

    /// <summary>A continuation with a captured synchronization context or scheduler, or execution context (the rare paths).</summary>
    private sealed class ContextContinuation(Action<object?> continuation, object? state, object? scheduler)
    {
        private static readonly ContextCallback RunCallback = static box => ((ContextContinuation)box!).Run(async: false);
        private static readonly SendOrPostCallback PostCallback = static box => ((ContextContinuation)box!).Invoke();
        private ExecutionContext? _executionContext;

        public ContextContinuation With(ExecutionContext executionContext)
        {
            _executionContext = executionContext;
            return this;
        }

        /// <summary>Runs in the captured execution context (then in the scheduler, if one was captured too).</summary>
        public void RunIn() => ExecutionContext.Run(_executionContext!, RunCallback, this);

        public void Run(bool async)
        {
            switch (scheduler)
            {
                case SynchronizationContext context:
#pragma warning disable VSTHRD001 // the caller's own context, captured by its await: posting to it is what resuming there means
                    context.Post(PostCallback, this);
#pragma warning restore VSTHRD001
                    break;
                case TaskScheduler taskScheduler:
                    _ = Task.Factory.StartNew(continuation, state, CancellationToken.None, TaskCreationOptions.DenyChildAttach, taskScheduler);
                    break;
                default:
                    if (async)
                    {
                        _ = Task.Factory.StartNew(continuation, state, CancellationToken.None, TaskCreationOptions.DenyChildAttach, TaskScheduler.Default);
                    }
                    else
                    {
                        continuation(state);
                    }

                    break;
            }
        }

        private void Invoke() => continuation(state);
    }

    /// <summary>A continuation started as a task (the systematic tests' scheduling; see RunContinuationsAsynchronously).</summary>
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
