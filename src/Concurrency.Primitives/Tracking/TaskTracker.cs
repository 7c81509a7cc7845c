using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Concurrency.Primitives;

// TaskTracker keeps these invariants (Tracking/README.md):
//  1. Registration precedes the start: Go increments the count synchronously, then queues the work.
//  2. Closing with a count of zero is terminal: the one compare-and-swap that takes the count to
//     zero while closing also sets CompleteBit, and every registration's compare-and-swap checks it.
//     No registration can slip between "count reached zero" and "complete".
//  3. Children register through a live parent's handle and are accepted while closing; top-level
//     registrations are rejected once closing has begun.
//  4. An extra Done() is refused before the swap, so the count never goes below zero; anonymous
//     (Add/Done) and lease counts are separate fields, so a stray Done() cannot eat a lease's count.
//  5. Close waits with a timeout and a token; a timeout names what is outstanding (GetOutstanding).
//  6. Failures of tracked work are recorded before their release (the first MaxRecordedFailures of them), reported to
//     WorkFailed, and thrown by CloseAsync and Completion; failures of RunAsync work go to the task RunAsync returned.
//  7. An optional concurrency limit: Go waits for a slot, TryGo returns false.
//  8. Finished Go work marks its record released (a negative id) without touching the count or the registry; a
//     registration that sweeps (once the registry has doubled) takes such records off the count in its own swap.
//     Once anything waits on the count (closing, WaitAsync, Count), releases take themselves off at once: a
//     compare-and-swap on the record's id decides, exactly once, whether the releaser or a sweep lowers the count
//     for it (see ReleaseWork, EnsureEagerRelease and Retire).
//  9. What a registration writes (the state word, the registry, its pool) sits on cache lines of its own
//     (RegistryState), apart from what the pool threads running the work read: a Go does not stall on them.

/// <summary>
/// Tracks asynchronous work so that a shutdown can wait for all of it: a WaitGroup / errgroup for .NET whose
/// registrations always happen <i>before</i> the work starts, and which cannot be reused by mistake after it
/// has completed.
/// </summary>
/// <remarks>
/// <para>
/// Start work with <see cref="Go(Func{CancellationToken, Task}, string?, CancellationToken)"/> (named after Go's
/// <c>errgroup.Go</c>): the count goes up synchronously, then the work runs on the thread pool, and the count goes down
/// when its task completes. Awaiting <c>Go</c> waits only for the work to be registered and started (for a free slot,
/// under <see cref="TaskTrackerOptions.MaxConcurrency"/>), never for the work itself. To await the work, start it with
/// <see cref="RunAsync(Func{CancellationToken, Task}, string?, CancellationToken)"/>, which returns the work's own task
/// (as <c>Task.Run</c> does, but tracked). Hold a lease with <see cref="Register"/> for work you start yourself.
/// <see cref="Add"/>, <see cref="Done"/> and <see cref="WaitAsync"/> are a drop-in for a WaitGroup — of its shape only:
/// an <c>Add</c> from inside the child still races the close (see the README's migration section).
/// </para>
/// <para>
/// <see cref="CloseAsync(TimeSpan, CancellationToken)"/> cancels <see cref="ClosingToken"/>, rejects new top-level work
/// (<see cref="ClosedException"/>) and waits for the count to reach zero; from then on the tracker is complete and every
/// registration fails. Work that is still running may register children through its <see cref="TrackedOperation"/> handle
/// while the tracker closes, and the close waits for them. <see cref="Add"/> follows the WaitGroup rule: it succeeds while
/// the tracker has not completed (the caller vouches that it holds a count), and fails afterwards.
/// </para>
/// <para>
/// Failures of tracked work are never lost: they are logged, counted, raised as <see cref="WorkFailed"/>, kept (the first
/// <see cref="TaskTrackerOptions.MaxRecordedFailures"/>) and thrown by <c>CloseAsync</c> and <see cref="Completion"/>, whose
/// task carries them all (<c>await</c> throws the first, as with <c>Task.WhenAll</c>). A failure of work started by
/// <c>RunAsync</c> goes to the task <c>RunAsync</c> returned instead. A cancelled task is not a failure.
/// </para>
/// <para>
/// <see cref="DisposeAsync"/> closes with <see cref="TaskTrackerOptions.ShutdownTimeout"/> and never throws: a timeout (with
/// every straggler's name and age) and the failures are logged at Error, and stay readable on <see cref="Completion"/>.
/// </para>
/// <para>All members are thread-safe.</para>
/// </remarks>
[DebuggerDisplay("{DebuggerDisplay,nq}")]
public sealed partial class TaskTracker : IAsyncDisposable, IDisposable
{
    // The state word: two counts and two flags, changed only by compare-and-swap.
    private const long AnonymousOne = 1;
    private const long AnonymousMask = (1L << 30) - 1;
    private const int OperationShift = 30;
    private const long OperationOne = 1L << OperationShift;
    private const long OperationMask = AnonymousMask << OperationShift;
    private const long CountMask = AnonymousMask | OperationMask;
    private const long ClosingBit = 1L << 60;
    private const long CompleteBit = 1L << 61;

    // Set while WaitAsync callers wait for the current zero (their signal is _zeroWaiter); cleared by the very swap that
    // takes the count to zero, so a wait begun after that swap (and after a new Add) can tell that the signal it finds
    // belongs to a zero that came before it (see WaitAsync).
    private const long WaiterBit = 1L << 62;
    private const int MaxCount = (int)AnonymousMask;
    private const string DefaultName = "TaskTracker";

    private readonly string _name;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly CoarseClock _clock;
    private readonly bool _cancelOnFirstFailure;
    private readonly bool _captureStackTraces;
    private readonly TimeSpan _shutdownTimeout;
    private readonly int _maxRecordedFailures;
    // Neither needs disposing: the semaphore's wait handle is never created, and the source has no
    // timer or linked registrations. Leaving them undisposed keeps late TryGo/ClosingToken calls safe.
    [SuppressMessage("Usage", "CA2213:Disposable fields should be disposed", Justification = "No wait handle is ever created.")]
    private readonly SemaphoreSlim? _slots;
    [SuppressMessage("Usage", "CA2213:Disposable fields should be disposed", Justification = "No timer or linked registrations; tokens handed out stay valid.")]
    private readonly CancellationTokenSource _stopping = new();
    private readonly KeyValuePair<string, object?> _metricTag;
    private readonly TaskTrackerMetrics _metrics;
    private readonly CancellationToken _stoppingToken;
    private readonly long _instance = Interlocked.Increment(ref s_lastInstance); // never 0: a thread's unset guess owns nothing

    // The state word and the registry (guarded by _registry, see TaskTracker.Operations.cs), on lines of their own.
    private RegistryState _hot;

    // How releases of Go work reach the count (see ReleaseWork): lazily, through the registry's sweeps, until something
    // waits for the count; then each release takes itself off. On a line of its own: every release reads it.
    private const int LazyRelease = 0;
    private const int Enabling = 1;
    private const int EagerRelease = 2;
    private PaddedInt _releaseMode;

    private TaskCompletionSource<bool>? _zeroWaiter; // guarded by _waitLock; written before WaiterBit is set
    private readonly object _waitLock = new();

    // Completes when the tracker completes (closed, count at zero): with the recorded failures, or successfully.
    private readonly TaskCompletionSource<bool> _completion = Signals.Create();
    private volatile bool _disposed;

    /// <summary>Creates a tracker.</summary>
    /// <param name="options">Settings; <see langword="null"/> for the defaults.</param>
    /// <exception cref="ArgumentOutOfRangeException">
    /// <see cref="TaskTrackerOptions.MaxConcurrency"/> is less than 1, <see cref="TaskTrackerOptions.ShutdownTimeout"/> is
    /// negative and not infinite, <see cref="TaskTrackerOptions.MaxRecordedFailures"/> is negative, or
    /// <see cref="TaskTrackerOptions.LongRunningThreshold"/> is not positive and finite.
    /// </exception>
    public TaskTracker(TaskTrackerOptions? options = null)
    {
        options ??= new TaskTrackerOptions();
        if (options.MaxConcurrency is { } limit)
        {
            if (limit < 1)
            {
                throw new ArgumentOutOfRangeException(nameof(options), limit, "TaskTrackerOptions.MaxConcurrency must be at least 1, or null for no limit.");
            }

            _slots = new SemaphoreSlim(limit, limit);
        }

        _shutdownTimeout = Guard.Timeout(options.ShutdownTimeout, "TaskTrackerOptions.ShutdownTimeout");
        if (options.LongRunningThreshold is { } threshold)
        {
            _longRunningThreshold = Guard.FinitePositive(threshold, "TaskTrackerOptions.LongRunningThreshold");
        }

        _maxRecordedFailures = options.MaxRecordedFailures >= 0
            ? options.MaxRecordedFailures
            : throw new ArgumentOutOfRangeException(nameof(options), options.MaxRecordedFailures, "TaskTrackerOptions.MaxRecordedFailures must be zero or more.");

        _name = string.IsNullOrEmpty(options.Name) ? DefaultName : options.Name!;
        _logger = options.Logger ?? NullLogger.Instance;
        _time = options.TimeProvider ?? TimeProvider.System;
        _clock = new CoarseClock(_time);
        _cancelOnFirstFailure = options.CancelOnFirstFailure;
        _captureStackTraces = options.CaptureRegistrationStackTraces;
        _metricTag = new KeyValuePair<string, object?>("tracker.name", _name);
        _metrics = TaskTrackerMetrics.For(options.MeterFactory);
        _hot.SweepAt = MinSweepAt;
        _stoppingToken = _stopping.Token;
        if (options.LongRunningThreshold is not null)
        {
            _longRunningTicks = _clock.ToTicks(_longRunningThreshold);
            _watchdog = _time.CreateTimer(static tracker => ((TaskTracker)tracker!).OnWatchdog(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }

        if (_logger.IsEnabled(LogLevel.Debug))
        {
            // The debug events report the count after each registration and release: with releases counted at once, the
            // count they print is the true one (lazily counted releases would show a count too high).
            _releaseMode.Value = EagerRelease;
        }
    }

    /// <summary>The tracker's name, from <see cref="TaskTrackerOptions.Name"/>.</summary>
    public string Name => _name;

    /// <summary>How many registrations are outstanding: leases, started or pending work, and anonymous <see cref="Add"/> counts.</summary>
    /// <remarks>Settles the releases the tracker has not yet counted (under the registry lock, as a registration does).</remarks>
    public int Count
    {
        get
        {
            int acknowledged;
            long next;
            lock (_registry)
            {
                acknowledged = SweepReleasedLocked(out next);
            }

            if (acknowledged > 0)
            {
                OnAcknowledged(next);
            }

            return CountOf(Volatile.Read(ref _hot.State));
        }
    }

    /// <summary><see langword="true"/> once <see cref="CloseAsync(TimeSpan, CancellationToken)"/> or <see cref="DisposeAsync"/> has begun.</summary>
    public bool IsClosing => (Volatile.Read(ref _hot.State) & ClosingBit) != 0;

    /// <summary><see langword="true"/> once the tracker has closed and its count has reached zero; every later registration fails.</summary>
    public bool IsCompleted => (Volatile.Read(ref _hot.State) & CompleteBit) != 0;

    /// <summary>
    /// Cancelled when the tracker begins closing (and on the first failure, with
    /// <see cref="TaskTrackerOptions.CancelOnFirstFailure"/>). Tracked work receives this token.
    /// </summary>
    public CancellationToken ClosingToken => _stoppingToken;

    /// <summary>
    /// Completes when the tracker has completed: it was closed (or disposed) and everything registered has finished.
    /// Faults with the recorded failures of tracked work, all of them (<c>await</c> throws the first, as with
    /// <c>Task.WhenAll</c>); completes successfully if there were none.
    /// </summary>
    public Task Completion => _completion.Task;

    // Side-effect free (a debugger evaluates it while threads are stopped, perhaps holding the registry lock): the raw
    // count, which may still include finished work whose release the tracker has not yet counted.
    private string DebuggerDisplay =>
        $"{_name}: Count <= {CountOf(Volatile.Read(ref _hot.State))}{(IsCompleted ? ", completed" : IsClosing ? ", closing" : string.Empty)}";

    /// <summary>Adds <paramref name="delta"/> anonymous registrations: the WaitGroup <c>Add</c>.</summary>
    /// <param name="delta">How many; at least 1. Release each with <see cref="Done"/>.</param>
    /// <remarks>
    /// Call it before starting the work it stands for, never from inside that work. It succeeds until the tracker
    /// has completed, including while it closes (WaitGroup's rule: only a caller that already holds a count may add
    /// during a close). Anonymous registrations have no name; <see cref="Register"/> gives one.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delta"/> is less than 1.</exception>
    /// <exception cref="InvalidOperationException">The tracker has completed, or the count would exceed 1,073,741,823.</exception>
    /// <exception cref="ObjectDisposedException">The tracker was disposed and has completed.</exception>
    public void Add(int delta = 1)
    {
        if (delta < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(delta), delta, "delta must be at least 1. To release registrations, call Done() once for each.");
        }

        var guessed = TryGuessState(out var state);
        while (true)
        {
            if ((state & CompleteBit) != 0 || (state & AnonymousMask) + delta > MaxCount)
            {
                if (guessed)
                {
                    // Only a state read from the word itself may refuse the call.
                    guessed = false;
                    state = Volatile.Read(ref _hot.State);
                    continue;
                }

                throw Rejected((state & CompleteBit) != 0 ? Rejection.Completed : Rejection.Overflow);
            }

            var seen = Interlocked.CompareExchange(ref _hot.State, state + delta, state);
            if (seen == state)
            {
                break;
            }

            guessed = false;
            state = seen;
        }

        RememberState(state + delta);

        if (_metrics.Outstanding.Enabled)
        {
            _metrics.Outstanding.Add(delta, _metricTag);
        }
    }

    /// <summary>Releases one anonymous registration made by <see cref="Add"/>: the WaitGroup <c>Done</c>.</summary>
    /// <exception cref="InvalidOperationException">
    /// There is no anonymous registration to release (more <c>Done</c> than <c>Add</c>). The count is left unchanged.
    /// </exception>
    public void Done()
    {
        var guessed = TryGuessState(out var state);
        long next;
        while (true)
        {
            if ((state & AnonymousMask) == 0)
            {
                if (guessed)
                {
                    guessed = false;
                    state = Volatile.Read(ref _hot.State);
                    continue;
                }

                throw new InvalidOperationException(
                    $"Done() was called on tracker '{_name}' more times than Add(): there is no Add() registration left to release. The count is unchanged. Leases from Register() are released with TrackedOperation.Dispose(), not Done().");
            }

            next = Settle(state - AnonymousOne);
            var seen = Interlocked.CompareExchange(ref _hot.State, next, state);
            if (seen == state)
            {
                break;
            }

            guessed = false;
            state = seen;
        }

        RememberState(next);
        OnCountDropped(next);
    }

    /// <summary>Waits until the count is zero: the WaitGroup <c>Wait</c>. Does not close the tracker.</summary>
    /// <param name="cancellationToken">Abandons this wait (the registrations are unaffected).</param>
    /// <returns>A task that completes when the count has been zero at some moment after the call.</returns>
    /// <remarks>
    /// A zero that came before the call never completes it, even if the release that made it has not yet finished
    /// returning: after <c>Done</c> takes the count to zero and another caller's <c>Add</c> raises it again, a wait begun
    /// then lasts until the next zero. Failures of tracked work are not thrown here (<c>CloseAsync</c> and
    /// <see cref="Completion"/> report them).
    /// </remarks>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public Task WaitAsync(CancellationToken cancellationToken = default)
    {
        EnsureEagerRelease();
        if (CountOf(Volatile.Read(ref _hot.State)) == 0)
        {
            return Task.CompletedTask;
        }

        TaskCompletionSource<bool> waiter;
        lock (_waitLock)
        {
            var state = Volatile.Read(ref _hot.State);
            while (true)
            {
                if (CountOf(state) == 0)
                {
                    return Task.CompletedTask;
                }

                if ((state & WaiterBit) != 0)
                {
                    waiter = _zeroWaiter!; // the signal of the zero still to come
                    break;
                }

                // No signal for the zero to come. A signal still here belongs to a zero that has already happened (its
                // swap cleared WaiterBit): complete it for its waiters, on behalf of the release that has not come
                // back for it yet, and start a new one.
                _zeroWaiter?.TrySetResult(true);
                waiter = Signals.Create();
                Volatile.Write(ref _zeroWaiter, waiter);
                var seen = Interlocked.CompareExchange(ref _hot.State, state | WaiterBit, state);
                if (seen == state)
                {
                    break;
                }

                state = seen; // changed meanwhile (perhaps to zero): look again
            }
        }

        return Signals.WaitAsync(waiter.Task, cancellationToken);
    }

    // The state word this thread last wrote with Add or Done, and to which tracker. Add and Done swap the word from a
    // guess: a thread's previous swap, if it was on this tracker, else a read. A right guess swaps in one step; a
    // wrong one fails its swap, which returns the word with its cache line already held for writing, and the retry
    // swaps at once. A read first would fetch the line shared and the swap fetch it again, and under contention the
    // other core takes it in between. A guess never refuses a call: only a state read from the word does.
    [ThreadStatic]
    private static long t_guessOwner;
    [ThreadStatic]
    private static long t_guess;
    private static long s_lastInstance;

    private bool TryGuessState(out long state)
    {
        if (t_guessOwner == _instance)
        {
            state = t_guess;
            return true;
        }

        state = Volatile.Read(ref _hot.State);
        return false;
    }

    private void RememberState(long state)
    {
        t_guess = state;
        t_guessOwner = _instance;
    }

    private static int CountOf(long state) => (int)(state & AnonymousMask) + (int)((state & OperationMask) >> OperationShift);

    /// <summary>
    /// The state a swap that leaves <paramref name="state"/>'s count must write: at zero, WaiterBit is cleared (this zero
    /// is the one the waiters wait for), and a closing tracker becomes complete, in the same swap.
    /// </summary>
    private static long Settle(long state) =>
        (state & CountMask) != 0 ? state
        : (state & ClosingBit) != 0 ? (state & ~WaiterBit) | CompleteBit
        : state & ~WaiterBit;

    /// <summary>After one registration was released, leaving <paramref name="next"/>.</summary>
    private void OnCountDropped(long next)
    {
        if (_metrics.Outstanding.Enabled)
        {
            _metrics.Outstanding.Add(-1, _metricTag);
        }

        OnAcknowledged(next);
    }

    /// <summary>After releases were taken off the count (their metric already counted), leaving <paramref name="next"/>.</summary>
    private void OnAcknowledged(long next)
    {
        if ((next & CountMask) == 0)
        {
            OnReachedZero(next);
        }
    }

    private void OnReachedZero(long state)
    {
        // A waiter writes its signal before it sets WaiterBit, and this swap to zero came after that or made the waiter
        // see the zero itself: so no signal here means nobody waits for this zero.
        if (Volatile.Read(ref _zeroWaiter) is not null)
        {
            TaskCompletionSource<bool>? waiter = null;
            lock (_waitLock)
            {
                // Complete the signal only if its zero has happened (WaiterBit clear): a wait begun since may have set up
                // a new signal, for the next zero, and must not be woken by this one.
                if ((Volatile.Read(ref _hot.State) & WaiterBit) == 0)
                {
                    waiter = _zeroWaiter;
                    _zeroWaiter = null;
                }
            }

            waiter?.TrySetResult(true);
        }

        if ((state & CompleteBit) != 0)
        {
            CompleteTerminal();
        }
    }

    private enum Rejection
    {
        None,
        Closing,
        Completed,
        ParentInactive,
        Overflow,
    }

    private InvalidOperationException Rejected(Rejection rejection) => rejection switch
    {
        Rejection.Closing when _disposed => new ObjectDisposedException(
            nameof(TaskTracker),
            $"Task tracker '{_name}' is being disposed: new top-level work is rejected. Running work can still register children through its TrackedOperation handle."),
        Rejection.Closing => new ClosedException(
            _name,
            $"Task tracker '{_name}' is closing: new top-level work is rejected. To add a child of running work, register it through that work's TrackedOperation handle (operation.Go or operation.Register) before the parent finishes."),
        Rejection.Completed when _disposed => new ObjectDisposedException(
            nameof(TaskTracker),
            $"Task tracker '{_name}' has been disposed and has completed; it accepts no more registrations. Create a new TaskTracker."),
        Rejection.Completed => new ClosedException(
            _name,
            $"Task tracker '{_name}' has completed: it was closed and its count reached zero, so it accepts no more registrations. Create a new TaskTracker."),
        Rejection.ParentInactive => new InvalidOperationException(
            $"The parent operation has already been released, so it can no longer register children in tracker '{_name}'. Register a child before its parent finishes (register before spawn)."),
        _ => new InvalidOperationException(
            $"Task tracker '{_name}' would exceed {MaxCount} outstanding registrations of one kind."),
    };
}
