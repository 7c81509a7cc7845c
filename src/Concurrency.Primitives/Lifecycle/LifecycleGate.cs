using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Concurrency.Primitives;

// LifecycleGate keeps these invariants (Lifecycle/README.md):
//  1. NotStarted -> Starting -> Running -> Stopping -> Stopped, plus StartFailed, RunFaulted and StopFailed; every
//     transition happens under _lock, is published by a volatile write and reported, in order, by StateChanged.
//  2. One start per cycle: the caller that moves the gate to Starting owns the cycle; everyone else awaits the
//     cycle's Started signal with their own token, which cancels only their wait.
//  3. Stop before start reports false; stop during start cancels the start's token and waits for it;
//     concurrent stops share the cycle's one stop signal.
//  4. A failed stop leaves StopFailed with the teardown resumable (OrderedTeardown keeps its place).
//  5. Stop order is OrderedTeardown's: cancel the run, await it, then the stop steps in reverse.
//  6. Every teardown step is bounded by ShutdownTimeout and a timeout names the step.
//  7. Restart after Stopped only with AllowRestart; after CloseAsync or dispose, never.
//  8. StartAsync on a running gate is one volatile read and a cached task.
//  9. No user delegate runs under _lock; the stop delegate is registered only after a successful start;
//     an accepted start always invokes the run (with its token already cancelled if a stop came first).
// 10. Callers are released before StateChanged is raised, so a handler may wait for the gate; handlers are isolated.

/// <summary>
/// An idempotent start/stop gate that owns a component's teardown order: start once, run a loop, and on stop
/// cancel the loop, wait until it has returned, and only then stop and release what the start acquired.
/// </summary>
/// <remarks>
/// <para>
/// Concurrent <see cref="StartAsync"/> callers share one start; concurrent <see cref="StopAsync"/> callers share one
/// stop. No call blocks a thread, and each caller's token cancels only that caller's wait. A stop requested while
/// starting cancels the start delegate's token and waits for it to return. The stop delegate is never called for a
/// start that did not succeed.
/// </para>
/// <para>
/// A run that faults on its own moves the gate to <see cref="LifecycleState.RunFaulted"/>, is logged, and its exception
/// is thrown by the next stop once the teardown is done — it is never swallowed. A stop that fails or times out leaves
/// the gate <see cref="LifecycleState.StopFailed"/>; calling <see cref="StopAsync"/> again resumes the teardown where it stopped.
/// </para>
/// <para>
/// Shutdown: <see cref="CloseAsync(TimeSpan, CancellationToken)"/> stops the gate for good and throws what the stop
/// throws; <see cref="DisposeAsync"/> does the same but never throws (it logs); <see cref="Dispose"/> begins it without waiting.
/// </para>
/// <para>
/// <see cref="StateChanged"/> handlers run one at a time, in transition order, on the thread that made the transition
/// (never under the gate's lock), after the callers waiting for that transition were released. A handler that throws is
/// logged; the others still run. All members are thread-safe.
/// </para>
/// </remarks>
[DebuggerDisplay("{Name,nq}: {State}")]
public sealed partial class LifecycleGate : IAsyncDisposable, IDisposable, ILifecycleMember
{
    private static readonly Task<bool> NotThisCall = Task.FromResult(false);

    private readonly object _lock = new();
    private readonly string _name;
    private readonly Func<LifecycleContext, CancellationToken, Task>? _start;
    private readonly Func<CancellationToken, Task>? _run;
    private readonly Func<CancellationToken, Task>? _stop;
    private readonly bool _allowRestart;
    private readonly TimeSpan _shutdownTimeout;
    private readonly OrderedTeardownOptions _teardownOptions;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly KeyValuePair<string, object?> _metricTag;
    private readonly LifecycleGateMetrics _metrics;
    private readonly Queue<LifecycleStateChangedEventArgs> _events = new();
    private readonly TaskCompletionSource<bool> _completion = Signals.Create();

    private int _state;
    private Cycle? _cycle;
    private TaskCompletionSource<bool> _whenRunning = Signals.Create();
    private TaskCompletionSource<bool> _whenStopped = Signals.Create();
    private Exception? _fault;
    private Exception? _runFault;
    private bool _closed;
    private bool _disposed;
    private bool _dispatching;
    private LifecycleGroup? _group;

    /// <summary>Creates a gate for a component: what it starts, runs and stops. Pass them by name: <c>new LifecycleGate(start: …, run: …)</c>.</summary>
    /// <param name="start">
    /// Acquires what the component needs; runs at most once per start cycle, on the thread pool. Register resources on the
    /// <see cref="LifecycleContext"/> to have them released on stop. Its token is cancelled when a stop is requested during
    /// the start (the stop then waits for the start to return). <see langword="null"/>: nothing to acquire.
    /// </param>
    /// <param name="run">
    /// The long-running loop, invoked on the thread pool after every accepted start (with its token already cancelled if a
    /// stop came first). Stop cancels its token and waits for it to return before releasing anything. A run that faults on
    /// its own moves the gate to <see cref="LifecycleState.RunFaulted"/>; its exception is thrown by the stop.
    /// <see langword="null"/>: no loop.
    /// </param>
    /// <param name="stop">
    /// The stop step: runs after the run has returned and before the resources registered during the start are released.
    /// Never called for a start that did not succeed. If it throws, the stop fails and can be retried; the step is called
    /// again. <see langword="null"/>: nothing to do.
    /// </param>
    /// <param name="options">Settings; <see langword="null"/> for the defaults.</param>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="LifecycleGateOptions.ShutdownTimeout"/> is negative and not infinite.</exception>
    /// <remarks>A gate with no delegate at all is a plain start/stop state machine (its state, events and signals).</remarks>
    public LifecycleGate(
        Func<LifecycleContext, CancellationToken, Task>? start = null,
        Func<CancellationToken, Task>? run = null,
        Func<CancellationToken, Task>? stop = null,
        LifecycleGateOptions? options = null)
    {
        options ??= new LifecycleGateOptions();
        _shutdownTimeout = Guard.Timeout(options.ShutdownTimeout, "LifecycleGateOptions.ShutdownTimeout");
        _name = string.IsNullOrEmpty(options.Name) ? "LifecycleGate" : options.Name!;
        _start = start;
        _run = run;
        _stop = stop;
        _allowRestart = options.AllowRestart;
        _logger = options.Logger ?? NullLogger.Instance;
        _time = options.TimeProvider ?? TimeProvider.System;
        _teardownOptions = new OrderedTeardownOptions
        {
            Name = _name,
            ShutdownTimeout = _shutdownTimeout,
            AbandonRunOnTimeout = options.AbandonRunOnTimeout,
            Logger = _logger,
            TimeProvider = _time,
        };
        _metricTag = new KeyValuePair<string, object?>("gate.name", _name);
        _metrics = LifecycleGateMetrics.For(options.MeterFactory);
    }

    /// <summary>Raised after every state transition, in order; see the class remarks for the threading rules.</summary>
    public event EventHandler<LifecycleStateChangedEventArgs>? StateChanged;

    /// <summary>The gate's name, from <see cref="LifecycleGateOptions.Name"/>.</summary>
    public string Name => _name;

    LifecycleGroup? ILifecycleMember.Group => Volatile.Read(ref _group);

    bool ILifecycleMember.TryJoin(LifecycleGroup group) => Interlocked.CompareExchange(ref _group, group, null) is null;

    /// <summary>The current state.</summary>
    public LifecycleState State => (LifecycleState)Volatile.Read(ref _state);

    /// <summary>
    /// While the gate stops (<see cref="LifecycleState.Stopping"/>): what its teardown waits for now, <c>"run"</c> while
    /// the run has not returned, else the stop step in progress (<c>"stop"</c> for the stop delegate, or the name given to
    /// <see cref="LifecycleContext.OnStop"/> or <c>Own</c>). <see langword="null"/> in every other state. For diagnostics:
    /// a host whose shutdown runs out of time can name what held it.
    /// </summary>
    public string? PendingStopStep => State == LifecycleState.Stopping ? Volatile.Read(ref _cycle)?.Teardown.PendingStep : null;

    /// <summary>
    /// The exception that put the gate in its failure state (<see cref="LifecycleState.StartFailed"/>,
    /// <see cref="LifecycleState.RunFaulted"/> or <see cref="LifecycleState.StopFailed"/>); <see langword="null"/> in any other state.
    /// </summary>
    public Exception? Fault
    {
        get
        {
            lock (_lock)
            {
                return _fault;
            }
        }
    }

    /// <summary>
    /// Completes when the gate reaches <see cref="LifecycleState.Running"/> (at once if it is running); faults with
    /// the start's exception if the start it waits for fails. After a stop it refers to the next start; it is cancelled
    /// when no start can come (the gate stopped without <see cref="LifecycleGateOptions.AllowRestart"/>, or was closed).
    /// </summary>
    public Task WhenRunning
    {
        get
        {
            lock (_lock)
            {
                return _whenRunning.Task;
            }
        }
    }

    /// <summary>Completes when the gate reaches <see cref="LifecycleState.Stopped"/>, or is closed without running: never started, or its last start failed (before or after the close).</summary>
    public Task WhenStopped
    {
        get
        {
            lock (_lock)
            {
                return _whenStopped.Task;
            }
        }
    }

    /// <summary>
    /// Completes when the gate has been closed (<see cref="CloseAsync(TimeSpan, CancellationToken)"/>, <see cref="DisposeAsync"/>
    /// or <see cref="Dispose"/>) and is torn down: the end of its life, as a Dataflow block's <c>Completion</c>. Faults with
    /// the run's exception if the last run faulted on its own. While a stop step keeps failing, it stays pending.
    /// </summary>
    public Task Completion => _completion.Task;

    /// <summary>Starts the gate, or joins the start in progress.</summary>
    /// <param name="cancellationToken">Cancels only this caller's wait; the start goes on for everyone else. Already cancelled: nothing starts.</param>
    /// <returns>
    /// <see langword="true"/> if this call started the gate; <see langword="false"/> if it was already running or
    /// another caller's start, which this call joined, brought it up.
    /// </returns>
    /// <exception cref="ObjectDisposedException">The gate has been disposed.</exception>
    /// <exception cref="ClosedException">The gate has been closed.</exception>
    /// <exception cref="InvalidOperationException">The gate is stopped (or stopping) and <see cref="LifecycleGateOptions.AllowRestart"/> is off, or a stop must finish first.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled, or a stop cancelled the start.</exception>
    /// <remarks>The start delegate's own exception is thrown to every caller waiting on that start.</remarks>
    public Task<bool> StartAsync(CancellationToken cancellationToken = default)
    {
        // The fast path of invariant 8: one volatile read, no allocation.
        if (Volatile.Read(ref _state) == (int)LifecycleState.Running)
        {
            return NotThisCall;
        }

        return StartSlowAsync(cancellationToken);
    }

    /// <summary>Stops the gate, or joins the stop in progress, or resumes a stop that failed.</summary>
    /// <param name="cancellationToken">
    /// Abandons only this caller's wait: the stop goes on, with each step still bounded by
    /// <see cref="LifecycleGateOptions.ShutdownTimeout"/>. (Unlike <c>IHostedService.StopAsync</c>'s token, it does not make
    /// the teardown less graceful: nothing is released under a live run.)
    /// </param>
    /// <returns>
    /// <see langword="true"/> if this call stopped the gate; <see langword="false"/> if it was not started (or its start
    /// failed), already stopped, or another caller's stop, which this call joined, did it.
    /// </returns>
    /// <exception cref="LifecycleStopTimeoutException">The run or a stop step did not finish within <see cref="LifecycleGateOptions.ShutdownTimeout"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    /// <remarks>
    /// A stop step's exception, or the run's own fault once the teardown is done, is thrown as is. After a failed
    /// stop the gate is <see cref="LifecycleState.StopFailed"/>; call <c>StopAsync</c> again to resume.
    /// </remarks>
    public Task<bool> StopAsync(CancellationToken cancellationToken = default) => StopCoreAsync(onlyAfterFault: null, cancellationToken);

    /// <summary>
    /// Stops the gate only if it is still <see cref="LifecycleState.RunFaulted"/> with <paramref name="fault"/>: a stop asked
    /// for by a handler of that transition, which may run after the gate has been stopped and started again.
    /// </summary>
    internal Task<bool> StopAfterFaultAsync(Exception fault) => StopCoreAsync(fault, CancellationToken.None);

    private Task<bool> StopCoreAsync(Exception? onlyAfterFault, CancellationToken cancellationToken)
    {
        Cycle cycle;
        TaskCompletionSource<bool> signal;
        var drive = false;
        lock (_lock)
        {
            if (_cycle is null || (onlyAfterFault is not null && (State != LifecycleState.RunFaulted || !ReferenceEquals(_fault, onlyAfterFault))))
            {
                return NotThisCall;
            }

            // Read the stop signal once: a stop in flight is joined (even when its teardown has just completed, the
            // gate is not Stopped until that stop says so); a finished one is never driven again.
            cycle = _cycle;
            var inFlight = cycle.StopSignal;
            if (inFlight is not { Task.IsCompleted: false })
            {
                if (!cycle.NeedsStop)
                {
                    return NotThisCall;
                }

                inFlight = cycle.StopSignal = Signals.Create<bool>();
                drive = true;
            }

            cycle.StopRequested = true;
            signal = inFlight;
        }

        if (drive)
        {
            // On the thread pool: the stop runs user code, which must not run on this caller's thread (nor post back to
            // its synchronization context: a UI thread blocked on this stop would never run the continuation).
            _ = Task.Run(() => DriveStopAsync(cycle, signal), CancellationToken.None);
        }

        return WaitForStopAsync(signal.Task, drive, cancellationToken);
    }

    /// <summary>
    /// Closes the gate: stops it (each step bounded by <see cref="LifecycleGateOptions.ShutdownTimeout"/>) and refuses every
    /// later start with <see cref="ClosedException"/>.
    /// </summary>
    /// <param name="cancellationToken">Abandons only this caller's wait; the stop goes on.</param>
    /// <returns>A task that completes when the gate is closed and torn down.</returns>
    /// <exception cref="LifecycleStopTimeoutException">A step did not finish in time; close (or stop) again to resume.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    /// <remarks>A stop step's exception, or the run's own fault, is thrown as by <see cref="StopAsync"/>.</remarks>
    public Task CloseAsync(CancellationToken cancellationToken = default) => CloseAsync(Timeout.InfiniteTimeSpan, cancellationToken);

    /// <summary>Closes the gate as <see cref="CloseAsync(CancellationToken)"/> does, waiting at most <paramref name="timeout"/> in all.</summary>
    /// <param name="timeout">The bound on the whole close; <see cref="Timeout.InfiniteTimeSpan"/> for none (each step is still bounded).</param>
    /// <param name="cancellationToken">Abandons only this caller's wait; the stop goes on.</param>
    /// <returns>A task that completes when the gate is closed and torn down.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="LifecycleStopTimeoutException">The close, or a step, did not finish in time; <see cref="LifecycleStopTimeoutException.Step"/> names the step it waited for.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public Task CloseAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Guard.Timeout(timeout);
        MarkClosed(disposing: false);
        return WaitForCloseAsync(StopAsync(CancellationToken.None), timeout, cancellationToken);
    }

    /// <summary>
    /// Closes the gate without waiting: begins the stop, refuses every later start, and returns at once. Never blocks and
    /// never throws; what the stop would throw is logged at Error. Prefer <see cref="DisposeAsync"/>, which waits for it.
    /// </summary>
    public void Dispose() => _ = DisposeAsync().AsTask();

    /// <summary>
    /// Closes the gate (as <see cref="CloseAsync(CancellationToken)"/>) and waits for the stop, each step bounded by
    /// <see cref="LifecycleGateOptions.ShutdownTimeout"/>. Never throws: a step that failed or timed out, or the run's own
    /// fault, is logged at Error and left readable (<see cref="Fault"/>, <see cref="Completion"/>, and a later
    /// <see cref="StopAsync"/>, which resumes the teardown). Later starts throw <see cref="ObjectDisposedException"/>.
    /// </summary>
    /// <returns>A task that completes when the gate is stopped, or its stop has failed.</returns>
    public async ValueTask DisposeAsync()
    {
        MarkClosed(disposing: true);
        try
        {
            await StopAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception failure)
        {
            LifecycleGateLog.DisposeFailed(_logger, _name, failure);
        }
    }

    private void MarkClosed(bool disposing)
    {
        lock (_lock)
        {
            _disposed |= disposing;
            if (_closed)
            {
                return;
            }

            _closed = true;
            if (State is LifecycleState.NotStarted or LifecycleState.Stopped or LifecycleState.StartFailed)
            {
                // Nothing will run any more: release whoever waits for a state that will never come.
                _whenRunning.TrySetCanceled();
                _whenStopped.TrySetResult(true);
            }

            TryCompleteLocked();
        }
    }

    private async Task WaitForCloseAsync(Task<bool> stop, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (!await Signals.WaitWithinAsync(stop, timeout, _time, cancellationToken).ConfigureAwait(false))
        {
            var step = Volatile.Read(ref _cycle)?.Teardown.PendingStep ?? "start";
            throw new LifecycleStopTimeoutException(_name, step, timeout, runAbandoned: false);
        }

        await stop.ConfigureAwait(false);
    }

    private async Task<bool> StartSlowAsync(CancellationToken cancellationToken)
    {
        // A call cancelled before it begins starts nothing (as a channel write with a cancelled token writes nothing).
        cancellationToken.ThrowIfCancellationRequested();
        while (true)
        {
            Cycle? cycle = null;
            Task? stopInFlight = null;
            var owner = false;
            lock (_lock)
            {
                if (_disposed)
                {
                    throw new ObjectDisposedException(nameof(LifecycleGate), $"Gate '{_name}' has been disposed; it cannot start again.");
                }

                if (_closed)
                {
                    throw new ClosedException(_name, $"Gate '{_name}' has been closed; it cannot start again. Create a new gate.");
                }

                switch (State)
                {
                    case LifecycleState.Running:
                        return false;
                    case LifecycleState.Starting:
                        cycle = _cycle!;
                        break;
                    case LifecycleState.Stopping when _allowRestart:
                        stopInFlight = _cycle!.StopSignal?.Task ?? Task.CompletedTask;
                        break;
                    case LifecycleState.Stopping:
                    case LifecycleState.Stopped when !_allowRestart:
                        throw new InvalidOperationException(
                            $"Gate '{_name}' has been stopped and does not allow a restart. Set LifecycleGateOptions.AllowRestart to start it again, or create a new gate.");
                    case LifecycleState.RunFaulted:
                    case LifecycleState.StopFailed:
                        throw new InvalidOperationException(
                            $"Gate '{_name}' is {State} with its teardown unfinished. Call StopAsync to finish the teardown before starting again.");
                    default:
                        // NotStarted, Stopped with restart allowed, or StartFailed: a new cycle. (A stop already gave
                        // WhenRunning a fresh signal for it.)
                        if (State == LifecycleState.Stopped)
                        {
                            _whenStopped = Signals.Create();
                        }

                        if (_whenRunning.Task.IsCompleted)
                        {
                            _whenRunning = Signals.Create();
                        }

                        _runFault = null;
                        cycle = _cycle = new Cycle(new OrderedTeardown(_teardownOptions));
                        owner = true;
                        Transition(LifecycleState.Starting);
                        break;
                }
            }

            if (stopInFlight is not null)
            {
                try
                {
                    await Signals.WaitAsync(stopInFlight, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception) when (!cancellationToken.IsCancellationRequested)
                {
                    // The stop failed; the next pass reports the StopFailed gate.
                }

                continue;
            }

            if (owner)
            {
                // On the pool: the start delegate's synchronous part must not hold this caller (whose token may
                // want to cancel its wait) nor anyone who joins the start.
                _ = Task.Run(() => RunStartAsync(cycle!), CancellationToken.None);
            }

            await Signals.WaitAsync(cycle!.Started.Task, cancellationToken).ConfigureAwait(false);
            return owner;
        }
    }
}
