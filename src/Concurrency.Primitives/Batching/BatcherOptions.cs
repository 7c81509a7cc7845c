using System;
using System.Collections.Generic;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives;

/// <summary>What happens to items already accepted but not yet dispatched when a <see cref="Batcher{TItem, TResult}"/> shuts down.</summary>
public enum BatcherShutdownMode
{
    /// <summary>They are dispatched (in batches, as usual) before the shutdown completes.</summary>
    Drain = 0,

    /// <summary>They fail at once with <see cref="ClosedException"/>; only dispatches already running are awaited.</summary>
    FailPending = 1,
}

/// <summary>Settings for a <see cref="Batcher{TItem, TResult}"/>. Read and validated once, at construction.</summary>
/// <remarks>Settings that depend on the item type live in <see cref="BatcherOptions{TItem}"/>, which a batcher takes in place of these.</remarks>
public class BatcherOptions
{
    /// <summary>A name for logs, metrics (<c>batcher.name</c>) and messages. Defaults to <c>"Batcher"</c>.</summary>
    public string? Name { get; set; }

    /// <summary>The most items in one batch; a batch is dispatched as soon as it is full. Default 64; at least 1.</summary>
    public int MaxBatchSize { get; set; } = 64;

    /// <summary>
    /// How long a batch may wait for more items, counted from its <i>first</i> item (never restarted by later ones).
    /// Default 5 ms. <see cref="TimeSpan.Zero"/> dispatches as soon as a dispatch slot is free, so batches form only
    /// while every slot is busy.
    /// </summary>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromMilliseconds(5);

    /// <summary>How many dispatches may run at once (the name <see cref="TaskTrackerOptions.MaxConcurrency"/> has for work). Default 1; at least 1.</summary>
    public int MaxConcurrency { get; set; } = 1;

    /// <summary>
    /// How many accepted items may wait for dispatch; when full, <c>SubmitAsync</c> waits asynchronously (and
    /// cancellably) for room. Default 4,096; at least <see cref="MaxBatchSize"/>; <see langword="null"/> for no bound
    /// (as <see cref="PeerEventPumpOptions.Capacity"/>).
    /// </summary>
    public int? Capacity { get; set; } = 4096;

    /// <summary>
    /// Every caller's default bound, from its <c>SubmitAsync</c> call to its result: time waiting for room, in the
    /// queue and in the dispatch. A caller whose bound passes is released with <see cref="BatchTimeoutException"/>;
    /// its item may still be processed by a dispatch that is already running. Default 30 seconds; positive, or
    /// <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> for no bound (callers then rely on their own tokens).
    /// </summary>
    /// <remarks>
    /// A caller is never released before this much time has passed since its submit. With the system clock,
    /// <see cref="MaxDelay"/> zero and a Timeout of 1,024 ms or more, a submit does not read the clock (the batcher knows
    /// its arrival to within a clock epoch of Timeout/128), and a caller is released up to Timeout/64 after its bound
    /// (about 470 ms of the default 30 s); otherwise within the timer's own lateness.
    /// </remarks>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long one dispatch may run. At this point (or when the last caller of the batch would time out, if sooner)
    /// the dispatch's token is cancelled and its waiters are released; a dispatch that still does not return is
    /// reported as stuck (log and metric) and keeps its slot. Default: <see cref="Timeout"/>; positive, or
    /// <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> for no bound.
    /// </summary>
    public TimeSpan? DispatchTimeout { get; set; }

    /// <summary>What happens to accepted, undispatched items at shutdown. Default <see cref="BatcherShutdownMode.Drain"/>.</summary>
    public BatcherShutdownMode ShutdownMode { get; set; }

    /// <summary>
    /// How long <c>CloseAsync</c> and <c>DisposeAsync</c> wait for the drain and running dispatches. Default 30 seconds;
    /// <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> for no bound.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Where the batcher logs. Defaults to a logger that discards everything.</summary>
    public ILogger? Logger { get; set; }

    /// <summary>The clock for delays, deadlines and timeouts. Defaults to <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider? TimeProvider { get; set; }

    /// <summary>
    /// Where the batcher's instruments are created: that factory's <c>Concurrency.Primitives</c> meter, as a host's
    /// <see cref="IMeterFactory"/> provides (so two hosts in one process keep separate meters, and a test can observe one).
    /// Defaults to <see langword="null"/>: the library's static meter of the same name (see <see cref="ConcurrencyPrimitivesTelemetry"/>).
    /// Instruments are tagged <c>batcher.name</c> either way.
    /// </summary>
    public IMeterFactory? MeterFactory { get; set; }

    /// <summary>
    /// Whether arrivals are stamped with a clock epoch rather than read from the clock per submit (where MaxDelay is zero
    /// and a Timeout is set): <see langword="null"/> (the default) with the system clock and a Timeout of a second or
    /// more; <see langword="true"/> with any clock (the tests' fake clocks).
    /// </summary>
    internal bool? ArrivalEpochs { get; set; }
}

/// <summary>
/// Settings for a <see cref="Batcher{TItem, TResult}"/> that depend on its item type, beside every setting of
/// <see cref="BatcherOptions"/>. Pass them where a batcher takes its options.
/// </summary>
/// <typeparam name="TItem">The batcher's item type.</typeparam>
public sealed class BatcherOptions<TItem> : BatcherOptions
{
    /// <summary>
    /// When set, callers of equal items (by this comparer) <i>within one batch</i> share one slot in the dispatch: the
    /// dispatch sees the item once, and every caller of it receives the answer given to that slot, or the failure. A
    /// caller that gives up leaves the slot to the others; a slot leaves the batch only when every caller of it has gone
    /// before the batch is cut. Nothing is cached beyond the batch: an equal item submitted after its batch was cut goes
    /// into a later batch and is dispatched again. Default <see langword="null"/>: no coalescing, each call is its own slot.
    /// </summary>
    /// <remarks>
    /// The comparer runs on the dispatch loop when a batch is cut. If it throws, the item it was comparing fails with that
    /// exception and the batch is cut without it. <see langword="null"/> items are equal to each other and to nothing else,
    /// and are never passed to the comparer. <see cref="BatcherOptions.MaxBatchSize"/> counts callers, so a batch of
    /// callers that share slots hands the dispatch fewer items.
    /// </remarks>
    public IEqualityComparer<TItem>? CoalescingComparer { get; set; }
}
