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
//     within the time between a submit's clock read and its push, which is all a caller can be released late by),
//     and every dispatch by DispatchTimeout (its token is cancelled, its callers released, the stuck slot reported).
//  6. Batches form by size, or by MaxDelay from their first item (the timer is armed once per batch and never
//     restarted); at most MaxConcurrency dispatches run; Capacity bounds the queue and makes submitters wait.
//  7. A submit from inside this batcher's own dispatch is refused (DispatchScope marks the dispatch's context).
//  8. After shutdown begins, a submit fails at once (ClosedException; ObjectDisposedException once disposed); queued
//     items drain or fail by ShutdownMode. The shutdown flag
//     shares the admission word with the count, so every item is either refused or counted, and the drain ends only
//     when the count is zero.
//  10. Items, batches, timers and token sources are pooled: the submit path allocates nothing of ours.
//  11. A caller's token affects only its own item; an item cancelled before dispatch is left out of its batch.
//  12. The dispatch's token carries the remaining bound, so retries inside it cannot outlast its callers.
//  13. A submit takes no lock while the queue has room: it is admitted by a compare-and-swap, pushed onto a lock-free
//     stack, and served by whoever holds the serve duty (ServeLocked says why no pushed item is left unserved). While
//     every slot is busy the duty is parked and the sweep looks at the stack at least once per Timeout. A busy dispatch
//     loop leaves the submits' cache line alone: it takes from the stack only when the queue cannot fill a batch, and
//     subtracts cut items from the admission count lazily (a submit that finds no room counts them under the lock first).

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
    private readonly Stack<BatchCore<TItem, TResult>> _corePool = new();
    // Items whose callers wait for room, in the order they came (see SubmitParked); guarded by _lock. Not admitted yet.
    private readonly Queue<BatchItem<TItem, TResult>> _parked = new();

    // What the submit path touches without the lock: admission count and shutdown flag, the stack of submitted items
    // not yet taken into the queue, and the serve duty (see ServeLocked). On a cache line of its own.
    private SubmitState _submit;

    // The queue of items taken in from the stack and not yet handed to a dispatch: a ring buffer, in submit order, of
    // _queued items (_submit.QueueHeld tells submits whether it is empty). Batches are cut from its head when they are
    // due (full, MaxDelay after their first item, or at once with MaxDelay zero).
    private BatchItem<TItem, TResult>[] _queue = new BatchItem<TItem, TResult>[16];
    private int _queueHead;
    private int _queued;

    // What the lock holder knows of the submit line without reading it, so that a busy dispatch loop leaves that line to
    // the submits: items cut from the queue and not yet subtracted from the admission count (LeaveQueueLocked), whether
    // the duty is parked (only a lock holder parks it or takes it back), and the QueueHeld value last published.
    private int _cutUncounted;
    private bool _dutyParked;
    private int _queueHeldPublished;

    // Running dispatches, oldest first (their items precede the queue's in submit order).
    private IntrusiveList<BatchCore<TItem, TResult>, BatchCoreLinks<TItem, TResult>> _running;
    private int _inFlight;

    // Released items that did not fit their thread's cache: any thread pushes one; a renting thread takes the whole chain.
    private BatchItem<TItem, TResult>? _returned;

    private ITimer? _delayTimer;
    private long _delayDueAt = long.MaxValue;
    private bool _closing;
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
        _metricTag = new KeyValuePair<string, object?>("batcher.name", _name);
        _metrics = BatcherMetrics.For(options.MeterFactory);

        static int Positive(int value, string option) => value >= 1
            ? value
            : throw new ArgumentOutOfRangeException(nameof(options), value, $"BatcherOptions.{option} must be at least 1.");
    }

    /// <summary>The most items a batcher admits: far below the admission word's shutdown flag.</summary>
    private const int MaxCapacity = int.MaxValue / 2;

    /// <summary>A bound that never passes, in clock ticks: far enough never to be reached, small enough never to overflow.</summary>
    private const long NeverTicks = long.MaxValue / 4;

    /// <summary>The batcher's name, from <see cref="BatcherOptions.Name"/>.</summary>
    public string Name => _name;

    /// <summary>
    /// Items accepted and not yet handed to a dispatch: a snapshot, to compare with <see cref="BatcherOptions.Capacity"/>
    /// (health checks, dashboards). Callers still waiting for room are not counted. Takes the batcher's lock: meant for
    /// occasional reads, not for a hot path.
    /// </summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return AdmittedCountLocked;
            }
        }
    }

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
                return $"{AdmittedCountLocked} admitted, {_queued} queued, {_inFlight} dispatching{(_parked.Count > 0 ? $", {_parked.Count} waiting for room" : string.Empty)}{(_closing ? ", shutting down" : string.Empty)}";
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

        var now = Now();
        var deadline = now + _timeoutTicks;

        // Admission, without the lock: one compare-and-swap takes a place in the queue, unless shutdown has begun
        // (the flag shares the word, so no item is admitted after it) or the queue is full (the slow path waits).
        if (Volatile.Read(ref _submit.RoomWaiters) != 0 || !TryAdmit(out var admitted))
        {
            return (Volatile.Read(ref _submit.Admitted) & SubmitState.Closing) != 0
                ? Failed(ShutDown())
                : SubmitParked(item, deadline, cancellationToken);
        }

        var node = BatchItem<TItem, TResult>.Rent(this, ref _returned);
        node.Initialize(item, deadline, cancellationToken);
        node.Arrival = now;
        var version = node.Version;
        Push(node);

        // Someone must look at the stack: a serving thread that has not let go will (it looks again before it does), as
        // will the next dispatch to finish while every slot is busy (Parked). Otherwise this item needs no one yet only
        // if it is not due and the queue's head has the MaxDelay timer armed; else this caller serves.
        if (Volatile.Read(ref _submit.Duty) == SubmitState.Idle
            && (_maxDelayTicks == 0 || admitted + 1 >= _maxBatchSize || Volatile.Read(ref _submit.QueueHeld) == 0))
        {
            TryServe();
        }

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
    /// The slow path: the queue looked full, or callers already wait for room. The item is rented at once and, unless it
    /// finds room now with nobody ahead of it, parked in line (FIFO); the caller awaits the item itself from the start.
    /// Room, when it comes, goes to the parked items in the order they came (see <see cref="AdmitParkedLocked"/>): the
    /// batcher moves them into the queue under its lock, so a place is never granted to a caller who then loses it to a
    /// newer submit, nor lost on one that gives up meanwhile (a parked item that completes, by its caller's token or its
    /// own deadline, is simply skipped).
    /// </summary>
    private ValueTask<TResult> SubmitParked(TItem item, long deadline, CancellationToken cancellationToken)
    {
        BatchItem<TItem, TResult> node;
        short version;
        BatchCore<TItem, TResult>? start = null;
        lock (_lock)
        {
            if (_closing)
            {
                return Failed(ShutDown());
            }

            FlushCutLocked(); // room that a busy dispatch loop has not yet handed back (parked items take it first)
            node = BatchItem<TItem, TResult>.Rent(this, ref _returned);
            node.Initialize(item, deadline, cancellationToken);
            version = node.Version;
            if (_parked.Count == 0 && TryAdmit(out _))
            {
                node.Arrival = Now();
                Push(node);
            }
            else
            {
                // Its deadline is older than those of items admitted while it waits, so it cannot join the sweep's order.
                if (_timeoutTicks != NeverTicks)
                {
                    node.ArmOwnDeadline(_time, Remaining(deadline), _timeout);
                }

                _parked.Enqueue(node);
                Volatile.Write(ref _submit.RoomWaiters, 1);
            }

            // Serve: this item, or parked items the flush above moved into the queue, may be due.
            start = ServeLocked(holdsDuty: false);
        }

        start?.Start();
        return new ValueTask<TResult>(node, version);
    }

    /// <summary>
    /// Takes a place in the queue if it has room (one compare-and-swap); refuses once shutdown has begun, whose flag
    /// sits above every count. <paramref name="admitted"/> is the count before this item.
    /// </summary>
    private bool TryAdmit(out long admitted)
    {
        admitted = Volatile.Read(ref _submit.Admitted);
        while (admitted < _capacity)
        {
            var seen = Interlocked.CompareExchange(ref _submit.Admitted, admitted + 1, admitted);
            if (seen == admitted)
            {
                return true;
            }

            admitted = seen;
        }

        return false;
    }

    /// <summary>Pushes a submitted item onto the stack that the next serve takes in (a compare-and-swap; no lock).</summary>
    private void Push(BatchItem<TItem, TResult> node)
    {
        var top = Volatile.Read(ref _submit.Incoming);
        while (true)
        {
            node.NextFree = (BatchItem<TItem, TResult>?)top;
            var seen = Interlocked.CompareExchange(ref _submit.Incoming, node, top);
            if (ReferenceEquals(seen, top))
            {
                return;
            }

            top = seen;
        }
    }

    /// <summary>Serves the queue if no one else is bound to: takes the idle duty, then serves under the lock.</summary>
    private void TryServe()
    {
        if (Interlocked.CompareExchange(ref _submit.Duty, SubmitState.Serving, SubmitState.Idle) != SubmitState.Idle)
        {
            return;
        }

        BatchCore<TItem, TResult>? start;
        lock (_lock)
        {
            start = ServeLocked(holdsDuty: true);
        }

        start?.Start();
    }

    /// <summary>Items admitted and not yet cut into a batch: in the queue, on the stack, or about to be pushed.</summary>
    private int AdmittedCount => (int)(Volatile.Read(ref _submit.Admitted) & (SubmitState.Closing - 1));

    /// <summary>Items admitted and not yet cut into a batch, exactly: the admission word less the cuts not yet subtracted.</summary>
    private int AdmittedCountLocked => AdmittedCount - _cutUncounted;

    /// <summary>The ring-buffer slot <paramref name="offset"/> places after the head (a compare, not a division).</summary>
    private int QueueIndex(int offset)
    {
        var index = _queueHead + offset;
        return index >= _queue.Length ? index - _queue.Length : index;
    }

    private void GrowQueueLocked()
    {
        var grown = new BatchItem<TItem, TResult>[Math.Min(_queue.Length * 2, Math.Max(_capacity, 16))];
        for (var i = 0; i < _queued; i++)
        {
            grown[i] = _queue[QueueIndex(i)];
        }

        _queue = grown;
        _queueHead = 0;
    }

    /// <summary>The exception for a submit after shutdown began: closed, or disposed.</summary>
    private InvalidOperationException ShutDown() => _disposed
        ? new ObjectDisposedException(nameof(Batcher<TItem, TResult>), $"Batcher '{_name}' has been disposed; it accepts no more items.")
        : new ClosedException(_name, $"Batcher '{_name}' is closed (or closing); it accepts no more items.");

    private long TicksOrNever(TimeSpan span) => span == Timeout.InfiniteTimeSpan ? NeverTicks : _clock.ToTicks(span);

    /// <summary>The span until <paramref name="deadline"/>, or <see cref="Timeout.InfiniteTimeSpan"/> for a bound that never passes.</summary>
    private TimeSpan RemainingOrInfinite(long deadline) => deadline - Now() >= NeverTicks / 2 ? Timeout.InfiniteTimeSpan : Remaining(deadline);

    /// <summary>The span until <paramref name="deadline"/>, at most what a timer accepts (a timer armed that far re-arms when it fires).</summary>
    private TimeSpan TimerDue(long deadline)
    {
        var remaining = Remaining(deadline);
        return remaining > Guard.MaxTimeout ? Guard.MaxTimeout : remaining;
    }

    /// <summary>The batcher's clock for deadlines (see <see cref="CoarseClock"/>).</summary>
    private long Now() => _clock.Now();

    private TimeSpan Remaining(long deadline) => _clock.Between(Now(), deadline);
}
