using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Concurrency.Primitives;

// LifecycleGate keeps these invariants (design.md, section 2):
//  1. NotStarted -> Starting -> Running -> Stopping -> Stopped, plus Faulted; every transition happens under
//     _lock, is published by a volatile write and reported, in order, by StateChanged.
//  2. One start per cycle: the caller that moves the gate to Starting owns the cycle; everyone else awaits the
//     cycle's Started signal with their own token, which cancels only their wait.
//  3. Stop before start reports false; stop during start cancels the start's token and waits for it;
//     concurrent stops share the cycle's one stop signal.
//  4. A failed stop leaves Faulted with the teardown resumable (OrderedTeardown keeps its place).
//  5. Stop order is OrderedTeardown's: cancel the run, await it, then the stop steps in reverse.
//  6. Every teardown step is bounded by StopTimeout and a timeout names the step.
//  7. Restart after Stopped only with AllowRestart.
//  8. StartAsync on a running gate is one volatile read and a cached task.
//  9. No user delegate runs under _lock; the stop delegate is registered only after a successful start;
//     an accepted start always invokes the run (with its token already cancelled if a stop came first).

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
/// A run that faults on its own moves the gate to <see cref="LifecycleState.Faulted"/>, is logged, and its
/// exception is thrown by the next stop once the teardown is done — it is never swallowed. A stop that fails or
/// times out leaves the gate <see cref="LifecycleState.Faulted"/>; calling <see cref="StopAsync"/> again resumes the
/// teardown where it stopped.
/// </para>
/// <para>
/// <see cref="StateChanged"/> handlers run one at a time, in transition order, on the thread that made the
/// transition (never under the gate's lock). All members are thread-safe.
/// </para>
/// </remarks>
[DebuggerDisplay("{Name,nq}: {State}")]
public sealed partial class LifecycleGate : IAsyncDisposable
{
    private static readonly Task<bool> NotThisCall = Task.FromResult(false);

    private readonly object _lock = new();
    private readonly string _name;
    private readonly Func<LifecycleContext, CancellationToken, Task>? _start;
    private readonly Func<CancellationToken, Task>? _run;
    private readonly Func<CancellationToken, Task>? _stop;
    private readonly bool _allowRestart;
    private readonly TimeSpan _stopTimeout;
    private readonly bool _abandonRunOnStopTimeout;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly KeyValuePair<string, object?> _metricTag;
    private readonly Queue<LifecycleStateChangedEventArgs> _events = new();

    private int _state;
    private Cycle? _cycle;
    private TaskCompletionSource<bool> _whenRunning = Signals.Create();
    private TaskCompletionSource<bool> _whenStopped = Signals.Create();
    private bool _disposed;
    private bool _dispatching;

    /// <summary>Creates a gate.</summary>
    /// <param name="options">What to start, run and stop; at least one of the three delegates.</param>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException">None of <see cref="LifecycleGateOptions.Start"/>, <see cref="LifecycleGateOptions.Run"/> and <see cref="LifecycleGateOptions.Stop"/> is set.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="LifecycleGateOptions.StopTimeout"/> is not positive and finite.</exception>
    public LifecycleGate(LifecycleGateOptions options)
    {
        Guard.NotNull(options);
        if (options.Start is null && options.Run is null && options.Stop is null)
        {
            throw new ArgumentException("Set at least one of LifecycleGateOptions.Start, Run or Stop.", nameof(options));
        }

        if (options.StopTimeout <= TimeSpan.Zero || options.StopTimeout > Guard.MaxTimeout)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.StopTimeout, "LifecycleGateOptions.StopTimeout must be positive and finite: a stop must be bounded.");
        }

        _name = string.IsNullOrEmpty(options.Name) ? "LifecycleGate" : options.Name!;
        _start = options.Start;
        _run = options.Run;
        _stop = options.Stop;
        _allowRestart = options.AllowRestart;
        _stopTimeout = options.StopTimeout;
        _abandonRunOnStopTimeout = options.AbandonRunOnStopTimeout;
        _logger = options.Logger ?? NullLogger.Instance;
        _time = options.TimeProvider ?? TimeProvider.System;
        _metricTag = new KeyValuePair<string, object?>("gate.name", _name);
    }

    /// <summary>Raised after every state transition, in order; see the class remarks for the threading rules.</summary>
    public event EventHandler<LifecycleStateChangedEventArgs>? StateChanged;

    /// <summary>The gate's name, from <see cref="LifecycleGateOptions.Name"/>.</summary>
    public string Name => _name;

    /// <summary>The current state.</summary>
    public LifecycleState State => (LifecycleState)Volatile.Read(ref _state);

    /// <summary>
    /// Completes when the gate reaches <see cref="LifecycleState.Running"/> (at once if it is running); faults with
    /// the start's exception if the start it waits for fails; is cancelled if the gate is disposed before running.
    /// After a stop, it refers to the next start.
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

    /// <summary>Completes when the gate reaches <see cref="LifecycleState.Stopped"/>, or is disposed without ever having started.</summary>
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

    /// <summary>Starts the gate, or joins the start in progress.</summary>
    /// <param name="cancellationToken">Cancels only this caller's wait; the start goes on for everyone else.</param>
    /// <returns>
    /// <see langword="true"/> if this call started the gate; <see langword="false"/> if it was already running or
    /// another caller's start, which this call joined, brought it up.
    /// </returns>
    /// <exception cref="ObjectDisposedException">The gate has been disposed.</exception>
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
    /// <param name="cancellationToken">Cancels only this caller's wait; the stop goes on.</param>
    /// <returns>
    /// <see langword="true"/> if this call stopped the gate; <see langword="false"/> if it was not started (or its start
    /// failed), already stopped, or another caller's stop, which this call joined, did it.
    /// </returns>
    /// <exception cref="LifecycleStopTimeoutException">The run or a stop step did not finish within <see cref="LifecycleGateOptions.StopTimeout"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    /// <remarks>
    /// A stop step's exception, or the run's own fault once the teardown is done, is thrown as is. After a failed
    /// stop the gate is <see cref="LifecycleState.Faulted"/>; call <c>StopAsync</c> again to resume.
    /// </remarks>
    public Task<bool> StopAsync(CancellationToken cancellationToken = default)
    {
        Cycle cycle;
        TaskCompletionSource<bool> signal;
        var drive = false;
        lock (_lock)
        {
            if (_cycle is null)
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
            _ = DriveStopAsync(cycle, signal);
        }

        return WaitForStopAsync(signal.Task, drive, cancellationToken);
    }

    /// <summary>Stops the gate (as <see cref="StopAsync"/>) and then refuses every further start.</summary>
    /// <returns>A task that completes when the gate is stopped.</returns>
    /// <exception cref="LifecycleStopTimeoutException">The stop timed out; dispose (or stop) again to resume.</exception>
    public async ValueTask DisposeAsync()
    {
        lock (_lock)
        {
            _disposed = true;
        }

        await StopAsync().ConfigureAwait(false);
        lock (_lock)
        {
            // Nothing will run any more: release whoever waits for a state that will never come.
            _whenRunning.TrySetCanceled();
            if (State is LifecycleState.NotStarted or LifecycleState.Stopped || _cycle is { NeedsStop: false })
            {
                _whenStopped.TrySetResult(true);
            }
        }
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
                    case LifecycleState.Faulted when _cycle!.NeedsStop:
                        throw new InvalidOperationException(
                            $"Gate '{_name}' is Faulted with its teardown unfinished (the run faulted or a stop failed). Call StopAsync to finish the teardown before starting again.");
                    default:
                        // NotStarted, Stopped with restart allowed, or Faulted by a failed start: a new cycle. (A stop
                        // already gave WhenRunning a fresh signal for it.)
                        if (State == LifecycleState.Stopped)
                        {
                            _whenStopped = Signals.Create();
                        }

                        if (_whenRunning.Task.IsCompleted)
                        {
                            _whenRunning = Signals.Create();
                        }

                        cycle = _cycle = new Cycle(new OrderedTeardown(_abandonRunOnStopTimeout, _time, _logger));
                        owner = true;
                        Transition(LifecycleState.Starting);
                        break;
                }
            }

            DispatchEvents();
            if (stopInFlight is not null)
            {
                try
                {
                    await Signals.WaitAsync(stopInFlight, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception) when (!cancellationToken.IsCancellationRequested)
                {
                    // The stop failed; the next pass reports the Faulted gate.
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
