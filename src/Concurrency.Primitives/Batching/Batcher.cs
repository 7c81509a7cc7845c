using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Concurrency.Primitives;

// Batcher keeps these invariants (Batching/README.md):
//  1. Every item completes exactly once: BatchItem's compare-and-swap decides between the dispatch, the caller's
//     token, the deadlines and the post-dispatch sweep; later attempts report false.
//  2/3/9. After every dispatch the sweep answers what the dispatch did not: its fault (BatchDispatchException),
//     a forgotten item (BatchItemNotCompletedException), or a result list of the wrong length (all items).
//  4/5. Every caller is bounded by Timeout (one sweep timer for the whole batcher; deadlines follow submit order to
//     within the time between a submit's clock read and its claim, which is all a caller can be released late by; where
//     arrivals are stamped with clock epochs, never early and at most two epoch periods late: see ClockEpochs),
//     and every dispatch by DispatchTimeout (its token is cancelled, its callers released, the stuck slot reported).
//  6. Batches form by size, or by MaxDelay from their first item (the timer is armed once per batch and never
//     restarted); at most MaxConcurrency dispatches run; Capacity bounds the queue and makes submitters wait.
//  7. A submit from inside this batcher's own dispatch is refused (DispatchScope marks the dispatch's context).
//  8. After shutdown begins, a submit fails at once (ClosedException; ObjectDisposedException once disposed); queued
//     items drain or fail by ShutdownMode. The shutdown flag shares the claim word with the ring's tail, so every item
//     is either refused or claimed, and the drain ends only when every claimed item has been cut.
//  10. Items, batches, timers and token sources are pooled: the submit path allocates nothing of ours.
//  11. A caller's token affects only its own item; an item cancelled before dispatch is left out of its batch.
//  12. The dispatch's token carries the remaining bound, so retries inside it cannot outlast its callers.
//  13. The queue is a ring of item cells. A submit claims the next index with one compare-and-swap of the claim word
//     (which also holds the shutdown flag and is checked against the cached room limit), then publishes its item into
//     the cell. Up to MaxConcurrency dispatch loops cut batches from the ring's head with a compare-and-swap of the cut
//     word, without the batcher's lock, and run batch after batch while batches are due; a loop that finds none leaves,
//     then looks once more (a submit reads the loop count after its claim: one of the two sees the other). The lock
//     guards the timers, the room waiters, the ring's growth and shutdown; the sweep takes a running batch from its
//     loop through the core's SweepPhase word before it touches the batch's items.
//  14. An item is claimed once (one compare-and-swap of its state word, which also says whether its caller awaits),
//      published once (a release write after the answer: the caller sees nothing before it) and recycled by its last
//      owner. A dispatch's answer lets go of the batcher's hold in its claim, so an answered item may serve a
//      later caller while its batch runs: the batch never touches that later use (the dispatch reads values copied at the
//      cut; the finish's releases and the sweep's answers are checked against the use the cut recorded).

/// <summary>
/// Collects items submitted one at a time into batches, dispatches each batch, and hands every caller its own result —
/// or an exception that says why. No caller is ever left waiting: a fault, a forgotten item, a hung dispatch, a
/// timeout and a shutdown each complete every waiter.
/// </summary>
/// <typeparam name="TItem">The item type.</typeparam>
/// <typeparam name="TResult">The result type.</typeparam>
/// <remarks>
/// <para>
/// A batch is dispatched when it holds <see cref="BatcherOptions.MaxBatchSize"/> items, or <see cref="BatcherOptions.MaxDelay"/>
/// after its first item, on the thread pool, with up to <see cref="BatcherOptions.MaxConcurrency"/> dispatches at
/// once. Items keep their submit order within a batch.
/// </para>
/// <para>
/// Each caller is bounded by <see cref="BatcherOptions.Timeout"/> and its own token. A caller that gives up is released
/// at once; if its batch was already dispatched, the item may still be processed. The dispatch's token is cancelled at
/// <see cref="BatcherOptions.DispatchTimeout"/>, or when the last caller of its batch would time out.
/// </para>
/// <para>
/// A dispatch must not submit to the batcher that is dispatching it (and wait): that can take every dispatch slot and
/// deadlock. Such a submit fails at once with <see cref="InvalidOperationException"/>.
/// </para>
/// <para>
/// Shutdown: <see cref="CloseAsync(TimeSpan, CancellationToken)"/> refuses new items (<see cref="ClosedException"/>),
/// drains or fails the queued ones (<see cref="BatcherOptions.ShutdownMode"/>) and waits for running dispatches;
/// <see cref="DisposeAsync"/> does the same but never throws; <see cref="Completion"/> completes when it is done. All
/// members are thread-safe.
/// </para>
/// </remarks>
[DebuggerDisplay("{Name,nq}: {DebuggerDisplay,nq}")]
public sealed partial class Batcher<TItem, TResult> : IAsyncDisposable, IDisposable
{
    private readonly object _lock = new();
    private readonly Func<Batch<TItem, TResult>, CancellationToken, ValueTask>? _dispatch;
    private readonly Func<IReadOnlyList<TItem>, CancellationToken, ValueTask<IReadOnlyList<TResult>>>? _dispatchList;
    private readonly string _name;
    private readonly int _maxBatchSize;
    private readonly TimeSpan _maxDelay;
    private readonly int _maxConcurrentBatches;

    /// <summary>Whether recycled items stay in their ring cells (see <see cref="KeepsInCell"/>): not at a MaxBatchSize of 1 with several dispatches.</summary>
    private readonly bool _keepsInCells;
    private readonly int _capacity;
    private readonly TimeSpan _timeout;
    private readonly long _timeoutTicks;
    private readonly long _dispatchTimeoutTicks;
    private readonly TimeSpan _dispatchTimeout;
    private readonly BatcherShutdownMode _shutdownMode;
    private readonly TimeSpan _shutdownTimeout;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly KeyValuePair<string, object?> _metricTag;
    private readonly BatcherMetrics _metrics;
    private readonly CoarseClock _clock;
    private readonly long _maxDelayTicks;

    // Where arrivals are stamped with a clock epoch instead of a clock read (see ClockEpochs); null: every submit reads
    // the clock. Kept with the system clock, MaxDelay zero (a batch's MaxDelay counts from an exact arrival) and a
    // Timeout of a second or more (an epoch lasts up to Timeout/128, and a few milliseconds at the least).
    private readonly ClockEpochs? _epochs;

    // Callers of equal items within one batch share a slot (BatcherOptions<TItem>.CoalescingComparer); null: no coalescing.
    private readonly IEqualityComparer<TItem>? _comparer;
    // Items whose callers wait for room, in the order they came (see SubmitParked); guarded by _lock. Not admitted yet.
    private readonly Queue<BatchItem<TItem, TResult>> _parked = new();

    // The dispatch loops' batches, one per MaxConcurrency slot, created on first use.
    private readonly BatchCore<TItem, TResult>?[] _cores;

    // The most cells the ring may grow to: Capacity, rounded up to a power of two.
    private readonly int _maxRingSize;

    // What the submit path touches without the lock (claim word, room limit, loop count, room waiters), on a line of its own.
    private SubmitState _submit;

    // The cut word (next index to cut), written by the loops once per batch, on a line of its own.
    private CutState _cut;

    // The queue: a ring of cells, in submit (claim) order. An index's item is published when its cell refers to an item
    // stamped with that index (RingIndex); the loops only read cells, so the ring's lines are written by submits alone.
    // Replaced (grown) only under the lock, with claims and cuts held off.
    private BatchItem<TItem, TResult>?[] _ring;

    // The ring's length (its cells, without the padding), written with the ring under the lock; for the room limit.
    private int _ringLength;

    // Released items that did not fit their thread's cache: any thread pushes one; a renting thread takes the whole chain.
    private BatchItem<TItem, TResult>? _returned;

    private ITimer? _delayTimer;
    private volatile bool _closing;
    private volatile bool _disposed;
    private readonly TaskCompletionSource<bool> _drained = Signals.Create();
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Usage", "CA2213:Disposable fields should be disposed", Justification = "A captured ExecutionContext is never disposed; it is shared by every dispatch.")]
    private ExecutionContext? _dispatchContext;

    /// <summary>Creates a batcher whose dispatch answers each item of a <see cref="Batch{TItem, TResult}"/>.</summary>
    /// <param name="dispatch">Processes a batch and answers its items; its token carries the remaining bound.</param>
    /// <param name="options">Settings; <see langword="null"/> for the defaults.</param>
    /// <exception cref="ArgumentNullException"><paramref name="dispatch"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of its range; the message names it.</exception>
    /// <remarks>
    /// A <see cref="Task"/>-returning dispatch is taken by the other overload. With C# 12 or earlier, an <c>async</c>
    /// lambda fits both: give it its return type (<c>async ValueTask (batch, ct) =&gt; …</c>).
    /// </remarks>
    [OverloadResolutionPriority(1)]
    public Batcher(Func<Batch<TItem, TResult>, CancellationToken, ValueTask> dispatch, BatcherOptions? options = null)
        : this(options)
    {
        _dispatch = Guard.NotNull(dispatch);
    }

    /// <summary>Creates a batcher whose <see cref="Task"/>-returning dispatch answers each item of a <see cref="Batch{TItem, TResult}"/>.</summary>
    /// <param name="dispatch">Processes a batch and answers its items; its token carries the remaining bound.</param>
    /// <param name="options">Settings; <see langword="null"/> for the defaults.</param>
    /// <exception cref="ArgumentNullException"><paramref name="dispatch"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of its range; the message names it.</exception>
    public Batcher(Func<Batch<TItem, TResult>, CancellationToken, Task> dispatch, BatcherOptions? options = null)
        : this(options)
    {
        Guard.NotNull(dispatch);
        _dispatch = (batch, cancellationToken) => new ValueTask(dispatch(batch, cancellationToken));
    }

    /// <summary>Creates a batcher whose dispatch returns one result per item, by position.</summary>
    /// <param name="dispatch">
    /// Processes the items (valid only during the call) and returns their results in the same order; a list of another
    /// length fails every item of the batch. Its token carries the remaining bound.
    /// </param>
    /// <param name="options">Settings; <see langword="null"/> for the defaults.</param>
    /// <exception cref="ArgumentNullException"><paramref name="dispatch"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of its range; the message names it.</exception>
    [OverloadResolutionPriority(1)]
    public Batcher(Func<IReadOnlyList<TItem>, CancellationToken, ValueTask<IReadOnlyList<TResult>>> dispatch, BatcherOptions? options = null)
        : this(options)
    {
        _dispatchList = Guard.NotNull(dispatch);
    }

    /// <summary>Creates a batcher whose <see cref="Task"/>-returning dispatch returns one result per item, by position.</summary>
    /// <param name="dispatch">
    /// Processes the items (valid only during the call) and returns their results in the same order; a list of another
    /// length fails every item of the batch. Its token carries the remaining bound.
    /// </param>
    /// <param name="options">Settings; <see langword="null"/> for the defaults.</param>
    /// <exception cref="ArgumentNullException"><paramref name="dispatch"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of its range; the message names it.</exception>
    public Batcher(Func<IReadOnlyList<TItem>, CancellationToken, Task<IReadOnlyList<TResult>>> dispatch, BatcherOptions? options = null)
        : this(options)
    {
        Guard.NotNull(dispatch);
        _dispatchList = (items, cancellationToken) => new ValueTask<IReadOnlyList<TResult>>(dispatch(items, cancellationToken));
    }

    private Batcher(BatcherOptions? options)
    {
        options ??= new BatcherOptions();
        _maxBatchSize = Positive(options.MaxBatchSize, "MaxBatchSize");
        _maxConcurrentBatches = Positive(options.MaxConcurrency, "MaxConcurrency");
        _keepsInCells = _maxBatchSize > 1 || _maxConcurrentBatches == 1;
        _capacity = options.Capacity is not { } capacity ? MaxCapacity
            : capacity >= _maxBatchSize && capacity <= MaxCapacity ? capacity
            : throw new ArgumentOutOfRangeException(nameof(options), capacity, $"BatcherOptions.Capacity must be at least MaxBatchSize ({_maxBatchSize}) and at most {MaxCapacity}, or null for no bound.");
        _maxDelay = options.MaxDelay >= TimeSpan.Zero && options.MaxDelay <= Guard.MaxTimeout
            ? options.MaxDelay
            : throw new ArgumentOutOfRangeException(nameof(options), options.MaxDelay, "BatcherOptions.MaxDelay must be zero or positive, and finite.");
        _timeout = Guard.PositiveOrInfinite(options.Timeout, "BatcherOptions.Timeout");
        _dispatchTimeout = Guard.PositiveOrInfinite(options.DispatchTimeout ?? options.Timeout, "BatcherOptions.DispatchTimeout");
        _shutdownTimeout = Guard.Timeout(options.ShutdownTimeout, "BatcherOptions.ShutdownTimeout");
        _shutdownMode = options.ShutdownMode is BatcherShutdownMode.Drain or BatcherShutdownMode.FailPending
            ? options.ShutdownMode
            : throw new ArgumentOutOfRangeException(nameof(options), options.ShutdownMode, "BatcherOptions.ShutdownMode is not a defined value.");
        _name = string.IsNullOrEmpty(options.Name) ? "Batcher" : options.Name!;
        _logger = options.Logger ?? NullLogger.Instance;
        _time = options.TimeProvider ?? TimeProvider.System;
        _clock = new CoarseClock(_time);
        _timeoutTicks = TicksOrNever(_timeout);
        _maxDelayTicks = _clock.ToTicks(_maxDelay);
        _dispatchTimeoutTicks = TicksOrNever(_dispatchTimeout);
        var epochPeriod = _timeoutTicks == NeverTicks ? 0 : _timeoutTicks / ClockEpochs.PerTimeout;
        if (_maxDelayTicks == 0 && epochPeriod >= 1 && (options.ArrivalEpochs ?? (_clock.IsSystem && epochPeriod >= MinEpochMilliseconds)))
        {
            _epochs = new ClockEpochs(Now(), epochPeriod);
        }

        _metricTag = new KeyValuePair<string, object?>("batcher.name", _name);
        _metrics = BatcherMetrics.For(options.MeterFactory);
        _comparer = options switch
        {
            BatcherOptions<TItem> typed => typed.CoalescingComparer,
            _ when options.GetType() is { IsGenericType: true } type && type.GetGenericTypeDefinition() == typeof(BatcherOptions<>) =>
                throw new ArgumentException($"The options are BatcherOptions<{type.GetGenericArguments()[0].Name}>, but this batcher's items are {typeof(TItem).Name}: pass BatcherOptions<{typeof(TItem).Name}>, or BatcherOptions.", nameof(options)),
            _ => null,
        };
        _cores = new BatchCore<TItem, TResult>?[_maxConcurrentBatches];
        _maxRingSize = RingSizeFor(_capacity);
        _ring = NewRing(RingSizeFor(Math.Min(_capacity, Math.Max(InitialRingSize, 4 * _maxBatchSize))));
        _submit.Limit = Math.Min(_capacity, _ringLength);

        static int Positive(int value, string option) => value >= 1
            ? value
            : throw new ArgumentOutOfRangeException(nameof(options), value, $"BatcherOptions.{option} must be at least 1.");
    }

    /// <summary>The most items a batcher admits: the ring that holds them is at most 2^30 cells.</summary>
    private const int MaxCapacity = int.MaxValue / 2;

    /// <summary>The ring's first size when Capacity allows more: it grows, doubling, as the queue needs it.</summary>
    private const int InitialRingSize = 256;

    /// <summary>The shortest epoch period kept with the system clock (milliseconds): a Timeout of 1,024 ms or more.</summary>
    private const long MinEpochMilliseconds = 8;

    /// <summary>A bound that never passes, in clock ticks: far enough never to be reached, small enough never to overflow.</summary>
    private const long NeverTicks = long.MaxValue / 4;

    /// <summary>The batcher's name, from <see cref="BatcherOptions.Name"/>.</summary>
    public string Name => _name;

    /// <summary>
    /// Items accepted and not yet handed to a dispatch: a snapshot, to compare with <see cref="BatcherOptions.Capacity"/>
    /// (health checks, dashboards). Callers still waiting for room are not counted.
    /// </summary>
    public int Count => (int)Math.Max(0, ClaimedIndex - CutIndex);

    /// <summary>
    /// Completes when the batcher has been closed (or disposed), every accepted item was dispatched or failed, and no
    /// dispatch runs any more. It never faults: a dispatch's failure belongs to that batch's callers.
    /// </summary>
    public Task Completion => _drained.Task;

    internal string DebuggerDisplay
    {
        get
        {
            lock (_lock)
            {
                var queued = Count;
                return $"{queued} admitted, {queued} queued, {DispatchingCount()} dispatching{(_parked.Count > 0 ? $", {_parked.Count} waiting for room" : string.Empty)}{(_closing ? ", shutting down" : string.Empty)}";
            }
        }
    }

    /// <summary>Submits one item and waits for its result.</summary>
    /// <param name="item">The item.</param>
    /// <param name="cancellationToken">Releases only this caller (its item is left out of its batch if not yet dispatched).</param>
    /// <returns>The item's result, as answered by the dispatch.</returns>
    /// <exception cref="ClosedException">The batcher is closed (or closing); also an accepted item's failure when <see cref="BatcherShutdownMode.FailPending"/> failed it.</exception>
    /// <exception cref="ObjectDisposedException">The batcher has been disposed.</exception>
    /// <exception cref="InvalidOperationException">Called from inside this batcher's own dispatch.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    /// <exception cref="BatchTimeoutException">The bound of <see cref="BatcherOptions.Timeout"/>, or the dispatch's timeout, passed first.</exception>
    /// <exception cref="BatchDispatchException">The dispatch failed before answering this item.</exception>
    /// <exception cref="BatchItemNotCompletedException">The dispatch returned without answering this item.</exception>
    /// <remarks>
    /// The returned <see cref="ValueTask{TResult}"/> must be awaited once (or converted once with <c>AsTask</c>). It is
    /// backed by a pooled source; awaiting it allocates nothing of ours. Reading its result a second time throws
    /// <see cref="InvalidOperationException"/> and affects no other caller. Whatever the dispatch sets with
    /// <c>TrySetException</c> is thrown as is. Callers that find the queue full wait in line: room goes to them in the
    /// order they came, before any later submit.
    /// </remarks>
    public ValueTask<TResult> SubmitAsync(TItem item, CancellationToken cancellationToken = default)
    {
        if (ReferenceEquals(DispatchScope.Owner.Value, this))
        {
            return Failed(new InvalidOperationException(
                $"SubmitAsync was called on batcher '{_name}' from inside its own dispatch. Waiting on it there can hold every dispatch slot and deadlock; process the item inline, or submit it to a different batcher."));
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return new ValueTask<TResult>(Task.FromCanceled<TResult>(cancellationToken)); // cancelled, not faulted
        }

        // Admission and hand-off in one step, without the lock: one compare-and-swap of the claim word takes the next
        // ring index, unless shutdown has begun (its flag is in the word), the ring grows, the queue is full, or callers
        // already wait for room (the slow path takes each case under the lock). The arrival is read from the clock, or
        // (where the batcher keeps epochs) stamped with the epoch read from the claim word's line after the claim.
        if (_epochs is null)
        {
            var now = Now();
            if (Volatile.Read(ref _submit.RoomWaiters) != 0 || !TryClaim(out var index))
            {
                return SubmitSlow(item, now, now + _timeoutTicks, cancellationToken);
            }

            return PublishClaimed(index, item, now, cancellationToken);
        }

        if (Volatile.Read(ref _submit.RoomWaiters) != 0 || !TryClaim(out var claimed))
        {
            var now = Now();
            return SubmitSlow(item, now, now + _timeoutTicks, cancellationToken);
        }

        return PublishStamped(claimed, item, ClockEpochs.Stamp(Volatile.Read(ref _submit.Epoch)), arrival: 0, cancellationToken);
    }

    /// <summary>
    /// The fast path's second half: the item of the claimed <paramref name="index"/>, read from the clock at
    /// <paramref name="now"/>, is published and made sure to be cut and swept. A thread preempted between the claim and
    /// this step holds back nobody's batch and nobody's bound by more than the cut and the sweep allow for (a claim not
    /// yet published); internal so that a test can stall a submit exactly there.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ValueTask<TResult> PublishClaimed(long index, TItem item, long now, CancellationToken cancellationToken) =>
        PublishStamped(index, item, now + _timeoutTicks, now, cancellationToken);

    /// <summary>
    /// Publishes the item of the claimed <paramref name="index"/> with its <paramref name="deadline"/> (a clock reading
    /// plus the Timeout, or an epoch stamp) and its <paramref name="arrival"/> (for MaxDelay; unread where epochs are kept).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ValueTask<TResult> PublishStamped(long index, TItem item, long deadline, long arrival, CancellationToken cancellationToken)
    {
        // The item the cell's last index used, if it was left there free (see KeepsInCell), begins its next use in place:
        // no pool, and the cell is not written (the new index, written last, publishes it). Else a pooled item is written in.
        var ring = Volatile.Read(ref _ring);
        var node = _keepsInCells ? Volatile.Read(ref Cell(ring, index)) : null;
        var inCell = node is not null && node.InCell(index - (ring.Length - 16));
        if (inCell)
        {
            node!.ReuseInCell();
        }
        else
        {
            node = BatchItem<TItem, TResult>.Rent(this, ref _returned);
        }

        node.Initialize(item, deadline, cancellationToken);
        node.Arrival = arrival;
        var version = node.Version;
        if (inCell)
        {
            Volatile.Write(ref node.RingIndex, index);
            CountQueued();
        }
        else
        {
            Publish(index, node);
        }

        AfterPublish(index, deadline);
        return new ValueTask<TResult>(node, version);
    }

    /// <summary>Keeps a chain of released items for reuse, without the lock (a compare-and-swap push).</summary>
    /// <remarks>The pool holds at most as many items as were ever outstanding at once: it never grows past the peak.</remarks>
    internal void ReturnItems(BatchItem<TItem, TResult> first, BatchItem<TItem, TResult> last) => FreeList.PushChain(ref _returned, first, last);

    internal void CountTimeout()
    {
        if (_metrics.Timeouts.Enabled)
        {
            _metrics.Timeouts.Add(1, _metricTag);
        }
    }

    private static ValueTask<TResult> Failed(Exception exception) => new(Task.FromException<TResult>(exception));

    /// <summary>
    /// Takes the next ring index if the queue has room (one compare-and-swap of the claim word). Refuses when shutdown
    /// has begun, while the ring grows, and when the index is at the room limit (after one look at the cut side).
    /// </summary>
    internal bool TryClaim(out long index)
    {
        var tail = Volatile.Read(ref _submit.Tail);
        while (true)
        {
            if ((tail & (SubmitState.Closing | SubmitState.Resizing)) != 0
                || (tail >= Volatile.Read(ref _submit.Limit) && tail >= RefreshLimit()))
            {
                index = 0;
                return false;
            }

            var seen = Interlocked.CompareExchange(ref _submit.Tail, tail + 1, tail);
            if (seen == tail)
            {
                index = tail;
                return true;
            }

            tail = seen;
        }
    }

    /// <summary>
    /// Recomputes the room limit: an index below it is under Capacity, and its cell is free, because the index a ring's
    /// length before it has been cut (a loop reads a run's cells before it claims the run, and never after). Only ever
    /// raises the cached value in effect; a racing write of an older value only makes a later claim look again.
    /// </summary>
    private long RefreshLimit()
    {
        var head = CutIndex;
        var limit = head + Math.Min(_capacity, Volatile.Read(ref _ringLength));
        Volatile.Write(ref _submit.Limit, limit);
        return limit;
    }

    /// <summary>
    /// A ring of <paramref name="length"/> cells (a power of two), its length recorded for the room limit. The array has eight
    /// unused cells at each end, so that the cells written never share a cache line with the array's header or a
    /// neighbouring object. Called from the constructor, or under the lock while claims and cuts are held off.
    /// </summary>
    private BatchItem<TItem, TResult>?[] NewRing(int length)
    {
        Volatile.Write(ref _ringLength, length);
        return new BatchItem<TItem, TResult>?[length + 16];
    }

    /// <summary>
    /// The cell of <paramref name="index"/> in <paramref name="ring"/> (any index: it wraps around). Cells lie in index
    /// order: the submits fill a cache line's eight cells one after another, and a loop cutting a batch or more behind
    /// them reads each line once, after they are done with it. (Laid out in columns, with the cells that share a line
    /// 256 indices apart, every submit had to take back a line a loop had just read: a transfer between the threads
    /// per item instead of one per eight.) A loop that keeps within a line of the submits shares that line with them
    /// while it does. The length comes from the array itself, so a reader holding a ring from before a growth reads
    /// that ring consistently.
    /// </summary>
    private static ref BatchItem<TItem, TResult>? Cell(BatchItem<TItem, TResult>?[] ring, long index) =>
        ref ring[8 + (int)(index & (ring.Length - 17))];

    /// <summary>The item published at <paramref name="index"/>, or <see langword="null"/> if its cell does not hold it (not yet published, or a later lap's).</summary>
    private static BatchItem<TItem, TResult>? PublishedAt(BatchItem<TItem, TResult>?[] ring, long index) =>
        Volatile.Read(ref Cell(ring, index)) is { } item && Volatile.Read(ref item.RingIndex) == index ? item : null;

    /// <summary>
    /// Whether a recycled <paramref name="item"/> stays in its ring cell, for the submit that claims the cell's next index
    /// to reuse in place (see <see cref="PublishClaimed"/>), rather than going to a pool: when it is still its last index's
    /// cell's item and that index is past the ring's first lap. (In the first lap an item goes back to the pool, and the
    /// next submits on the thread that read its answer reuse it there: a batcher that never wraps its ring keeps no more
    /// items than were in flight at once. From the second lap on, every cell comes round again.) A racing submit that
    /// claimed the next index may find the item still held and write another into the cell: the item left there is then
    /// in no cell and no pool, and the collector takes it (no use of it follows, since no cell offers it). Not at a
    /// MaxBatchSize of 1 with several dispatches at once: there, measured, kept items made the batcher slower (the class
    /// run's 1×4 cell: 126-154 ns per item kept, 69-124 pooled); items there are pooled, and a submit does not look at
    /// its cell's item. With one dispatch at a time they made it faster (1×1: 43-66 ns per item kept, 71-166 pooled).
    /// </summary>
    internal bool KeepsInCell(BatchItem<TItem, TResult> item)
    {
        if (!_keepsInCells)
        {
            return false;
        }

        var ring = Volatile.Read(ref _ring);
        var index = Volatile.Read(ref item.RingIndex);
        return index >= ring.Length - 16 && ReferenceEquals(Volatile.Read(ref Cell(ring, index)), item);
    }

    /// <summary>Writes a claimed index's item into its cell (into the grown ring if the ring grew since the claim).</summary>
    private void Publish(long index, BatchItem<TItem, TResult> node)
    {
        node.RingIndex = index;
        var ring = Volatile.Read(ref _ring);
        Volatile.Write(ref Cell(ring, index), node);
        CountQueued();
    }

    private void CountQueued()
    {
        if (_metrics.Queued.Enabled)
        {
            _metrics.Queued.Add(1, _metricTag);
        }
    }

    /// <summary>
    /// After a publish: makes sure someone will cut the item. A loop is started if one is free and a batch is due (full,
    /// MaxDelay zero, or draining); otherwise the MaxDelay timer covers it, or a running loop does. Then the deadline
    /// sweep is armed if no sweep is. Both reads follow the claim's full fence (see RunLoop and SweepDeadlines).
    /// </summary>
    private void AfterPublish(long index, long deadline)
    {
        if (Volatile.Read(ref _submit.Loops) < _maxConcurrentBatches && (_maxDelayTicks == 0 || index + 1 - CutIndex >= _maxBatchSize))
        {
            StartLoopWithCut();
        }
        else if (_maxDelayTicks != 0 && Volatile.Read(ref _delayDueAt) == long.MaxValue)
        {
            ArmDelayForHead(deadline - _timeoutTicks); // the item's arrival
        }

        if (_timeoutTicks != NeverTicks && Volatile.Read(ref _sweepDueAt) == long.MaxValue)
        {
            lock (_lock)
            {
                ArmSweepLocked(EarliestBound(deadline));
            }
        }
    }

    /// <summary>
    /// The slow path: shutdown has begun, the ring is growing or must grow, the queue is full, or callers already wait for
    /// room. Under the lock: refused after shutdown; else the ring grows if Capacity allows more than it holds; else the
    /// item is claimed at once if no one waits ahead of it, or parked in line (FIFO) and the caller awaits the item itself
    /// from the start. Room, when it comes, goes to the parked items in the order they came (see <see cref="AdmitParkedLocked"/>),
    /// so a place is never granted to a caller who then loses it to a newer submit, nor lost on one that gives up meanwhile
    /// (a parked item that completes, by its caller's token or its own deadline, is simply skipped).
    /// </summary>
    private ValueTask<TResult> SubmitSlow(TItem item, long now, long deadline, CancellationToken cancellationToken)
    {
        BatchItem<TItem, TResult> node;
        short version;
        long index;
        lock (_lock)
        {
            if (_closing)
            {
                return Failed(ShutDown());
            }

            node = BatchItem<TItem, TResult>.Rent(this, ref _returned);
            node.Initialize(item, deadline, cancellationToken);
            version = node.Version;
            if (_parked.Count > 0 || !TryClaimLocked(out index))
            {
                // Its deadline is older than those of items admitted while it waits, so it cannot join the sweep's order.
                node.MarkParked();
                if (_timeoutTicks != NeverTicks)
                {
                    node.ArmOwnDeadline(_time, Remaining(deadline), _timeout);
                }

                _parked.Enqueue(node);

                // The flag first, then one more look for room (a loop that cuts reads the flag after its fence).
                Interlocked.Exchange(ref _submit.RoomWaiters, 1);
                AdmitParkedLocked();
                return new ValueTask<TResult>(node, version);
            }

            node.Arrival = now;
            Publish(index, node);
        }

        AfterPublish(index, deadline);
        return new ValueTask<TResult>(node, version);
    }

    /// <summary>Claims an index under the lock, growing the ring first if Capacity allows more than it holds.</summary>
    private bool TryClaimLocked(out long index)
    {
        while (true)
        {
            if (TryClaim(out index))
            {
                return true;
            }

            var tail = Volatile.Read(ref _submit.Tail);
            if ((tail & SubmitState.Closing) != 0
                || (tail & SubmitState.IndexMask) - CutIndex >= _capacity
                || !TryGrowRingLocked())
            {
                return false;
            }
        }
    }

    /// <summary>
    /// Doubles the ring, if it is below its largest size and the queue fills it: sets the resize flag on the claim word
    /// (claims wait on the lock) and on the cut word (loops wait), waits for the claims made before it to be published,
    /// copies the queued cells, publishes the new ring, and clears the flags. Called under the lock.
    /// </summary>
    private bool TryGrowRingLocked()
    {
        var ring = _ring;
        var length = _ringLength;
        if (length >= _maxRingSize)
        {
            return false;
        }

        SetFlag(ref _submit.Tail, SubmitState.Resizing);
        SetFlag(ref _cut.Head, SubmitState.Resizing);
        var spinner = default(SpinWait);
        var tail = ClaimedIndex;
        var head = CutIndex;
        var items = new BatchItem<TItem, TResult>[tail - head];
        for (var index = head; index < tail; index++)
        {
            BatchItem<TItem, TResult>? item;
            while ((item = PublishedAt(ring, index)) is null)
            {
                spinner.SpinOnce(); // a submit claimed the index before the flag and is about to publish it
            }

            items[index - head] = item;
        }

        var grown = NewRing(Math.Min(length * 2, _maxRingSize));
        for (var index = head; index < tail; index++)
        {
            Cell(grown, index) = items[index - head];
        }

        Volatile.Write(ref _ring, grown);
        Volatile.Write(ref _cut.Head, head);
        ClearFlag(ref _submit.Tail, SubmitState.Resizing);
        RefreshLimit();
        return true;
    }

    private static void SetFlag(ref long word, long flag)
    {
        var seen = Volatile.Read(ref word);
        while (true)
        {
            var witnessed = Interlocked.CompareExchange(ref word, seen | flag, seen);
            if (witnessed == seen)
            {
                return;
            }

            seen = witnessed;
        }
    }

    private static void ClearFlag(ref long word, long flag)
    {
        var seen = Volatile.Read(ref word);
        while (true)
        {
            var witnessed = Interlocked.CompareExchange(ref word, seen & ~flag, seen);
            if (witnessed == seen)
            {
                return;
            }

            seen = witnessed;
        }
    }

    /// <summary>The ring size for <paramref name="items"/>: the next power of two, at most 2^30.</summary>
    private static int RingSizeFor(int items)
    {
        var size = 16;
        while (size < items && size < 1 << 30)
        {
            size <<= 1;
        }

        return size;
    }

    /// <summary>The next index to claim (the claim word without its flags).</summary>
    private long ClaimedIndex => Volatile.Read(ref _submit.Tail) & SubmitState.IndexMask;

    /// <summary>The next index to cut (the cut word without its flag).</summary>
    internal long CutIndex => Volatile.Read(ref _cut.Head) & SubmitState.IndexMask;

    /// <summary>The exception for a submit after shutdown began: closed, or disposed.</summary>
    private InvalidOperationException ShutDown() => _disposed
        ? new ObjectDisposedException(nameof(Batcher<TItem, TResult>), $"Batcher '{_name}' has been disposed; it accepts no more items.")
        : new ClosedException(_name, $"Batcher '{_name}' is closed (or closing); it accepts no more items.");

    private long TicksOrNever(TimeSpan span) => span == Timeout.InfiniteTimeSpan ? NeverTicks : _clock.ToTicks(span);

    /// <summary>The span until <paramref name="deadline"/>, at most what a timer accepts (a timer armed that far re-arms when it fires).</summary>
    private TimeSpan TimerDue(long deadline)
    {
        var remaining = Remaining(deadline);
        return remaining > Guard.MaxTimeout ? Guard.MaxTimeout : remaining;
    }

    /// <summary>
    /// The latest a caller's bound can be, from its item's deadline field: the deadline itself, or for an epoch stamp the
    /// end of its epoch plus the Timeout; if that epoch has not ended, <paramref name="unended"/> (a clock reading taken
    /// after the item was read from the queue, so after its arrival) plus the Timeout. Never earlier than the bound.
    /// </summary>
    private long LatestBound(long deadline, long unended) =>
        ClockEpochs.IsStamp(deadline) ? _epochs!.ArrivedBy(ClockEpochs.EpochOf(deadline), unended) + _timeoutTicks : deadline;

    /// <summary>The earliest a caller's bound can be (for arming the sweep: early is safe): the deadline, or its epoch's start plus the Timeout.</summary>
    private long EarliestBound(long deadline) =>
        ClockEpochs.IsStamp(deadline) ? _epochs!.Start(ClockEpochs.EpochOf(deadline)) + _timeoutTicks : deadline;

    /// <summary>Whether arrivals are stamped with clock epochs (see <see cref="ClockEpochs"/>) rather than read per submit.</summary>
    internal bool KeepsArrivalEpochs => _epochs is not null;

    /// <summary>The batcher's clock for deadlines (see <see cref="CoarseClock"/>).</summary>
    internal long Now() => _clock.Now();

    private TimeSpan Remaining(long deadline) => _clock.Between(Now(), deadline);
}
