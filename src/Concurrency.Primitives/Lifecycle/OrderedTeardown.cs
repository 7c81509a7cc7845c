using System;
using System.Collections.Generic;
using System.Runtime.ExceptionServices;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Concurrency.Primitives;

// OrderedTeardown keeps the teardown order of design.md section 2, invariant 5:
//   cancel the run's token -> await the run until it has returned (every finally ran) -> steps in
//   reverse order of registration. A resource is never disposed while the run may still use it,
//   unless the run is abandoned by option after its timeout.
// A failed or timed-out execution can be resumed: the step that failed stays on the stack, and a
// step still in flight is awaited again rather than invoked a second time.

/// <summary>
/// Tears down a run loop and the resources it uses in a safe order: cancel the run, wait until it has fully
/// returned, then stop or dispose each registered step in reverse order of registration, each step bounded by a
/// timeout. The building block of <see cref="LifecycleGate"/>, usable on its own with an existing run loop.
/// </summary>
/// <remarks>
/// <para>
/// This ends the bug class in which <c>Close()</c> disposed a database client, then cancelled the loop, whose error
/// path then used the disposed client. Register resources in the order you acquire them; they are released in the
/// opposite order, after the run.
/// </para>
/// <para>
/// <see cref="ExecuteAsync"/> may be called concurrently: callers share one execution. If a step throws or times out,
/// the execution stops there and the exception reaches the callers; calling <see cref="ExecuteAsync"/> again resumes at
/// that step. If the run faulted (with anything but an <see cref="OperationCanceledException"/>), its exception is
/// thrown once the teardown has completed. Thread-safe.
/// </para>
/// </remarks>
public sealed class OrderedTeardown
{
    private const string RunStep = "run";

    private readonly object _lock = new();
    private readonly List<(string Name, Func<CancellationToken, ValueTask> Step)> _steps = new();
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly bool _abandonRunOnTimeout;
    private Task? _run;
    private CancellationTokenSource? _runCancellation;
    private bool _runSettled;
    private bool _begun;
    private Task? _execution;
    private Task? _stepInFlight;
    private bool _completed;

    /// <summary>Creates an empty teardown.</summary>
    /// <param name="abandonRunOnTimeout">
    /// When <see langword="true"/>, a run that does not return within the step timeout is abandoned and the steps run
    /// anyway (the execution then throws <see cref="LifecycleStopTimeoutException"/> with <see cref="LifecycleStopTimeoutException.RunAbandoned"/>
    /// set). When <see langword="false"/> (the default), nothing is disposed under a run that is still live.
    /// </param>
    /// <param name="timeProvider">The clock for step timeouts; <see cref="TimeProvider.System"/> by default.</param>
    /// <param name="logger">Where teardown progress and failures are logged; nothing by default.</param>
    public OrderedTeardown(bool abandonRunOnTimeout = false, TimeProvider? timeProvider = null, ILogger? logger = null)
    {
        _abandonRunOnTimeout = abandonRunOnTimeout;
        _time = timeProvider ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary><see langword="true"/> once the run has returned (or been abandoned) and every step has completed.</summary>
    public bool IsCompleted
    {
        get
        {
            lock (_lock)
            {
                return _completed;
            }
        }
    }

    /// <summary>Sets the run loop to stop first: its token source is cancelled, then the run is awaited.</summary>
    /// <param name="run">The run loop's task.</param>
    /// <param name="cancellation">The source whose token the run observes.</param>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">A run was already set, or the teardown has begun.</exception>
    public void SetRun(Task run, CancellationTokenSource cancellation)
    {
        _ = Guard.NotNull(run);
        Guard.NotNull(cancellation);
        lock (_lock)
        {
            ThrowIfBegun();
            if (_run is not null)
            {
                throw new InvalidOperationException("A run is already set; an OrderedTeardown stops one run loop.");
            }

            _run = run;
            _runCancellation = cancellation;
        }
    }

    /// <summary>Registers a stop step; steps run in reverse order of registration, after the run has returned.</summary>
    /// <param name="name">The step's name, reported if it fails or times out.</param>
    /// <param name="step">The step; its token is cancelled when the step's timeout elapses.</param>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The teardown has begun; release the resource yourself.</exception>
    public void Add(string name, Func<CancellationToken, ValueTask> step)
    {
        Guard.NotNull(name);
        Guard.NotNull(step);
        lock (_lock)
        {
            ThrowIfBegun();
            _steps.Add((name, step));
        }
    }

    /// <summary>Registers a resource to dispose, in reverse order of registration, after the run has returned.</summary>
    /// <param name="resource">The resource.</param>
    /// <param name="name">Its name in errors and logs; its type name by default.</param>
    /// <exception cref="ArgumentNullException"><paramref name="resource"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The teardown has begun; dispose the resource yourself.</exception>
    public void Add(IAsyncDisposable resource, string? name = null)
    {
        Guard.NotNull(resource);
        Add(name ?? resource.GetType().Name, _ => resource.DisposeAsync());
    }

    /// <summary>Registers a resource to dispose, in reverse order of registration, after the run has returned.</summary>
    /// <param name="resource">The resource.</param>
    /// <param name="name">Its name in errors and logs; its type name by default.</param>
    /// <exception cref="ArgumentNullException"><paramref name="resource"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The teardown has begun; dispose the resource yourself.</exception>
    public void Add(IDisposable resource, string? name = null)
    {
        Guard.NotNull(resource);
        Add(name ?? resource.GetType().Name, _ =>
        {
            resource.Dispose();
            return default;
        });
    }

    /// <summary>Runs the teardown (or joins the one in progress, or resumes one that failed).</summary>
    /// <param name="stepTimeout">How long the run, and then each step, may take; positive and finite.</param>
    /// <param name="cancellationToken">Abandons only this caller's wait; the teardown goes on.</param>
    /// <returns>A task that completes when the teardown has completed.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="stepTimeout"/> is not positive and finite.</exception>
    /// <exception cref="LifecycleStopTimeoutException">The run or a step did not finish in time; <see cref="LifecycleStopTimeoutException.Step"/> names it.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    /// <remarks>Any exception a step throws, or the run's own fault once the teardown is complete, is rethrown as is.</remarks>
    public Task ExecuteAsync(TimeSpan stepTimeout, CancellationToken cancellationToken = default)
    {
        Guard.FinitePositive(stepTimeout);
        Task execution;
        lock (_lock)
        {
            if (_completed)
            {
                return Task.CompletedTask;
            }

            _begun = true;
            if (_execution is null || _execution.IsCompleted)
            {
                _execution = ExecuteCoreAsync(stepTimeout);
            }

            execution = _execution;
        }

        return Signals.WaitAsync(execution, cancellationToken);
    }

    private async Task ExecuteCoreAsync(TimeSpan stepTimeout)
    {
        // Yield first: the caller holds our lock while it starts us.
        await Task.Yield();
        ExceptionDispatchInfo? runFault = null;
        LifecycleStopTimeoutException? abandoned = null;

        if (_run is { } run && !_runSettled)
        {
            // A run that ended before the teardown cancelled it, while its token was never cancelled, ended on its own:
            // whatever it threw (an OperationCanceledException from an HttpClient timeout included) is its fault. Once the
            // token is cancelled, an OperationCanceledException is the orderly exit, whichever token it carries (a run
            // often waits on a token linked to its own).
            var endedOnItsOwn = run.IsCompleted && !_runCancellation!.IsCancellationRequested;
            CancelRun();
            try
            {
                await Signals.WaitAsync(run, stepTimeout, _time, CancellationToken.None).ConfigureAwait(false);
            }
            catch (TimeoutException) when (!run.IsCompleted)
            {
                if (!_abandonRunOnTimeout)
                {
                    LifecycleGateLog.StepTimedOut(_logger, RunStep, stepTimeout);
                    throw new LifecycleStopTimeoutException(RunStep, stepTimeout, runAbandoned: false);
                }

                LifecycleGateLog.RunAbandoned(_logger, stepTimeout);
                abandoned = new LifecycleStopTimeoutException(RunStep, stepTimeout, runAbandoned: true);
            }
            catch (OperationCanceledException) when (!endedOnItsOwn)
            {
                // The run honoured its token.
            }
            catch (Exception fault)
            {
                runFault = ExceptionDispatchInfo.Capture(fault);
            }

            _runSettled = true;
        }

        while (true)
        {
            (string Name, Func<CancellationToken, ValueTask> Step) step;
            lock (_lock)
            {
                if (_steps.Count == 0)
                {
                    _completed = true;
                    break;
                }

                step = _steps[_steps.Count - 1];
            }

            // A step that timed out earlier may still be running: await it again, never invoke it twice.
            using var deadline = Signals.CancelAfter(_time, stepTimeout);
            var inFlight = _stepInFlight ??= InvokeStep(step.Step, deadline.Token);
            try
            {
                await Signals.WaitAsync(inFlight, stepTimeout, _time, CancellationToken.None).ConfigureAwait(false);
            }
            catch (TimeoutException) when (!inFlight.IsCompleted)
            {
                // Tell the step its time is up (its own deadline may not have fired yet).
                CancelQuietly(deadline);
                LifecycleGateLog.StepTimedOut(_logger, step.Name, stepTimeout);
                throw new LifecycleStopTimeoutException(step.Name, stepTimeout, runAbandoned: false);
            }
            catch (Exception failure)
            {
                // The step stays on the stack: a later execution invokes it again.
                _stepInFlight = null;
                LifecycleGateLog.StepFailed(_logger, step.Name, failure);
                throw;
            }

            _stepInFlight = null;
            lock (_lock)
            {
                _steps.RemoveAt(_steps.Count - 1);
            }
        }

        if (abandoned is not null)
        {
            throw abandoned;
        }

        runFault?.Throw();
    }

    private static Task InvokeStep(Func<CancellationToken, ValueTask> step, CancellationToken cancellationToken)
    {
        try
        {
            return step(cancellationToken).AsTask();
        }
        catch (Exception exception)
        {
            return Task.FromException(exception);
        }
    }

    private void CancelQuietly(CancellationTokenSource source)
    {
        try
        {
            source.Cancel();
        }
        catch (AggregateException callbackFailures)
        {
            LifecycleGateLog.StepFailed(_logger, "step cancellation callbacks", callbackFailures);
        }
    }

    private void CancelRun()
    {
        try
        {
            _runCancellation!.Cancel();
        }
        catch (AggregateException callbackFailures)
        {
            // Callbacks on the run's token are the run's own code; the run reports through its task.
            LifecycleGateLog.StepFailed(_logger, "run cancellation callbacks", callbackFailures);
        }
    }

    private void ThrowIfBegun()
    {
        if (_begun)
        {
            throw new InvalidOperationException("The teardown has begun; it accepts no more steps. Release the resource yourself.");
        }
    }
}
