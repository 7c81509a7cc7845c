using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Concurrency.Primitives;

// OrderedTeardown keeps the teardown order of the Lifecycle README's invariant 5:
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
/// <see cref="ExecuteAsync(CancellationToken)"/> may be called concurrently: callers share one execution. If a step
/// throws or times out, the execution stops there and the exception reaches the callers; calling it again resumes at
/// that step. If the run ended on its own with an exception (an <see cref="OperationCanceledException"/> included, unless
/// its token had been cancelled), that exception is thrown once the teardown has completed.
/// </para>
/// <para>
/// <see cref="DisposeAsync"/> runs the teardown if it has not run, bounded by <see cref="OrderedTeardownOptions.ShutdownTimeout"/>,
/// and never throws: what the execution would have thrown is logged at Error. Thread-safe.
/// </para>
/// </remarks>
[DebuggerDisplay("{Name,nq}: {IsCompleted ? \"completed\" : \"pending\",nq}")]
public sealed class OrderedTeardown : IAsyncDisposable, IDisposable
{
    private const string RunStep = "run";

    private readonly object _lock = new();
    private readonly List<(string Name, Func<CancellationToken, Task> Step)> _steps = new();
    private readonly string _name;
    private readonly TimeSpan _shutdownTimeout;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly bool _abandonRunOnTimeout;
    private Task? _run;
    private CancellationTokenSource? _runCancellation;
    private bool _runSettled;

    // How the run settled, kept until the execution that completes the teardown throws it: an execution that stops at a
    // failing step must not lose it (the execution that resumes and completes the teardown reports it).
    private ExceptionDispatchInfo? _runFault;
    private LifecycleStopTimeoutException? _runAbandoned;
    private bool _begun;
    private bool _disposed;
    private Task? _execution;
    private Task? _stepInFlight;
    private volatile string? _currentStep;
    private bool _completed;

    /// <summary>Creates an empty teardown.</summary>
    /// <param name="options">Settings; <see langword="null"/> for the defaults.</param>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="OrderedTeardownOptions.ShutdownTimeout"/> is negative and not infinite.</exception>
    public OrderedTeardown(OrderedTeardownOptions? options = null)
    {
        options ??= new OrderedTeardownOptions();
        _shutdownTimeout = Guard.Timeout(options.ShutdownTimeout, "OrderedTeardownOptions.ShutdownTimeout");
        _name = string.IsNullOrEmpty(options.Name) ? "OrderedTeardown" : options.Name!;
        _abandonRunOnTimeout = options.AbandonRunOnTimeout;
        _time = options.TimeProvider ?? TimeProvider.System;
        _logger = options.Logger ?? NullLogger.Instance;
    }

    /// <summary>The teardown's name, from <see cref="OrderedTeardownOptions.Name"/>.</summary>
    public string Name => _name;

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

    /// <summary>
    /// What the execution in progress waits for now: <c>"run"</c> while it waits for the run to return, else the name of
    /// the step in progress; <see langword="null"/> when no execution is waiting. For diagnostics: a shutdown that runs
    /// out of time can say what held it.
    /// </summary>
    public string? PendingStep => _currentStep;

    /// <summary>Sets the run loop to stop first: its token source is cancelled, then the run is awaited.</summary>
    /// <param name="run">The run loop's task.</param>
    /// <param name="cancellation">The source whose token the run observes.</param>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">A run was already set.</exception>
    /// <exception cref="ClosedException">The teardown has begun.</exception>
    /// <exception cref="ObjectDisposedException">The teardown has been disposed.</exception>
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
    /// <param name="step">The step; its token is cancelled when the step's timeout elapses.</param>
    /// <param name="name">The step's name, reported if it fails or times out.</param>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    /// <exception cref="ClosedException">The teardown has begun; release the resource yourself.</exception>
    /// <exception cref="ObjectDisposedException">The teardown has been disposed.</exception>
    public void Add(Func<CancellationToken, Task> step, string name)
    {
        Guard.NotNull(step);
        Guard.NotNull(name);
        lock (_lock)
        {
            ThrowIfBegun();
            _steps.Add((name, step));
        }
    }

    /// <summary>Registers a resource to dispose (with <c>DisposeAsync</c>), in reverse order of registration, after the run has returned.</summary>
    /// <typeparam name="T">The resource's type. A type that is also <see cref="IDisposable"/> is disposed asynchronously.</typeparam>
    /// <param name="resource">The resource.</param>
    /// <param name="name">Its name in errors and logs; its type name by default.</param>
    /// <exception cref="ArgumentNullException"><paramref name="resource"/> is <see langword="null"/>.</exception>
    /// <exception cref="ClosedException">The teardown has begun; dispose the resource yourself.</exception>
    /// <exception cref="ObjectDisposedException">The teardown has been disposed.</exception>
    /// <remarks>A resource that is only <see cref="IDisposable"/> is taken by <see cref="OrderedTeardownExtensions.Add{T}(OrderedTeardown, T, string?)"/>.</remarks>
    public void Add<T>(T resource, string? name = null)
        where T : class, IAsyncDisposable
    {
        Guard.NotNull(resource);
        Add(_ => resource.DisposeAsync().AsTask(), name ?? resource.GetType().Name);
    }

    /// <summary>
    /// Runs the teardown (or joins the one in progress, or resumes one that failed), the run and each step bounded by
    /// <see cref="OrderedTeardownOptions.ShutdownTimeout"/>.
    /// </summary>
    /// <param name="cancellationToken">Abandons only this caller's wait; the teardown goes on.</param>
    /// <returns>A task that completes when the teardown has completed.</returns>
    /// <exception cref="LifecycleStopTimeoutException">The run or a step did not finish in time; <see cref="LifecycleStopTimeoutException.Step"/> names it.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    /// <remarks>Any exception a step throws, or the run's own fault once the teardown is complete, is rethrown as is.</remarks>
    public Task ExecuteAsync(CancellationToken cancellationToken = default) => ExecuteAsync(_shutdownTimeout, cancellationToken);

    /// <summary>Runs the teardown (or joins the one in progress, or resumes one that failed), with the given bound per step.</summary>
    /// <param name="stepTimeout">How long the run, and then each step, may take; <see cref="Timeout.InfiniteTimeSpan"/> for no bound.</param>
    /// <param name="cancellationToken">Abandons only this caller's wait; the teardown goes on.</param>
    /// <returns>A task that completes when the teardown has completed.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="stepTimeout"/> is negative and not infinite.</exception>
    /// <exception cref="LifecycleStopTimeoutException">The run or a step did not finish in time; <see cref="LifecycleStopTimeoutException.Step"/> names it.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    /// <remarks>Any exception a step throws, or the run's own fault once the teardown is complete, is rethrown as is.</remarks>
    public Task ExecuteAsync(TimeSpan stepTimeout, CancellationToken cancellationToken = default)
    {
        Guard.Timeout(stepTimeout);
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
                // On the thread pool: the steps are user code, and the caller (holding our lock now, or a UI thread's
                // synchronization context) must not run them, nor have their continuations posted back to it.
                _execution = Task.Run(() => ExecuteCoreAsync(stepTimeout), CancellationToken.None);
            }

            execution = _execution;
        }

        return Signals.WaitAsync(execution, cancellationToken);
    }

    /// <summary>
    /// Begins the teardown if it has not begun, and returns at once: never blocks, never throws. What the teardown would
    /// throw is logged at Error. Prefer <see cref="DisposeAsync"/>, which waits for it.
    /// </summary>
    public void Dispose() => _ = DisposeAsync().AsTask();

    /// <summary>
    /// Runs the teardown if it has not completed (bounded by <see cref="OrderedTeardownOptions.ShutdownTimeout"/> per step),
    /// then refuses every further registration with <see cref="ObjectDisposedException"/>. Never throws: a failed or timed-out
    /// step, or the run's own fault, is logged at Error, and a later <see cref="ExecuteAsync(CancellationToken)"/> resumes and reports it.
    /// </summary>
    /// <returns>A task that completes when the teardown has completed or given up.</returns>
    public async ValueTask DisposeAsync()
    {
        lock (_lock)
        {
            _disposed = true;
        }

        try
        {
            await ExecuteAsync(_shutdownTimeout, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception failure)
        {
            LifecycleGateLog.TeardownDisposeFailed(_logger, _name, failure);
        }
    }

    private async Task ExecuteCoreAsync(TimeSpan stepTimeout)
    {
        if (_run is { } run && !_runSettled)
        {
            // A run that ended before the teardown cancelled it, while its token was never cancelled, ended on its own:
            // whatever it threw (an OperationCanceledException from an HttpClient timeout included) is its fault. Once the
            // token is cancelled, an OperationCanceledException is the orderly exit, whichever token it carries (a run
            // often waits on a token linked to its own).
            var endedOnItsOwn = run.IsCompleted && !_runCancellation!.IsCancellationRequested;
            _currentStep = RunStep; // before the cancellation, so whoever it wakes reads what the teardown waits for
            CancelRun();
            if (!await Signals.WaitWithinAsync(run, stepTimeout, _time, CancellationToken.None).ConfigureAwait(false))
            {
                if (!_abandonRunOnTimeout)
                {
                    _currentStep = null;
                    LifecycleGateLog.StepTimedOut(_logger, RunStep, stepTimeout);
                    throw new LifecycleStopTimeoutException(_name, RunStep, stepTimeout, runAbandoned: false);
                }

                LifecycleGateLog.RunAbandoned(_logger, stepTimeout);
                _runAbandoned = new LifecycleStopTimeoutException(_name, RunStep, stepTimeout, runAbandoned: true);
            }
            else
            {
                try
                {
                    await run.ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!endedOnItsOwn)
                {
                    // The run honoured its token.
                }
                catch (Exception fault)
                {
                    _runFault = ExceptionDispatchInfo.Capture(fault);
                }
            }

            _runSettled = true;
        }

        while (true)
        {
            (string Name, Func<CancellationToken, Task> Step) step;
            lock (_lock)
            {
                if (_steps.Count == 0)
                {
                    _completed = true;
                    _currentStep = null;
                    break;
                }

                step = _steps[_steps.Count - 1];
            }

            // A step that timed out earlier may still be running: await it again, never invoke it twice.
            _currentStep = step.Name;
            using var deadline = Signals.CancelAfter(_time, stepTimeout);
            var inFlight = _stepInFlight ??= InvokeStep(step.Step, deadline.Token);
            if (!await Signals.WaitWithinAsync(inFlight, stepTimeout, _time, CancellationToken.None).ConfigureAwait(false))
            {
                // Tell the step its time is up (its own deadline may not have fired yet).
                _currentStep = null;
                CancelQuietly(deadline);
                LifecycleGateLog.StepTimedOut(_logger, step.Name, stepTimeout);
                throw new LifecycleStopTimeoutException(_name, step.Name, stepTimeout, runAbandoned: false);
            }

            try
            {
                await inFlight.ConfigureAwait(false);
            }
            catch (Exception failure)
            {
                // The step stays on the stack: a later execution invokes it again.
                _currentStep = null;
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

        if (_runAbandoned is { } abandoned)
        {
            throw abandoned;
        }

        _runFault?.Throw();
    }

    private static Task InvokeStep(Func<CancellationToken, Task> step, CancellationToken cancellationToken)
    {
        try
        {
            return step(cancellationToken) ?? Task.FromException(new InvalidOperationException("A teardown step returned a null Task; return Task.CompletedTask instead."));
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
        if (_disposed)
        {
            throw new ObjectDisposedException(nameof(OrderedTeardown), $"Teardown '{_name}' has been disposed; it accepts no more steps. Release the resource yourself.");
        }

        if (_begun)
        {
            throw new ClosedException(_name, $"Teardown '{_name}' has begun; it accepts no more steps. Release the resource yourself.");
        }
    }
}

/// <summary>Registers resources that are only <see cref="IDisposable"/> with an <see cref="OrderedTeardown"/> or a <see cref="LifecycleContext"/>.</summary>
/// <remarks>
/// Extension methods, so that overload resolution picks the instance method for every <see cref="IAsyncDisposable"/>
/// (also when it is <see cref="IDisposable"/> too, as <c>Stream</c> and <c>DbConnection</c> are) and comes here only for a
/// type that is <see cref="IDisposable"/> alone: no call is ambiguous, and a type that is neither does not compile.
/// </remarks>
public static class OrderedTeardownExtensions
{
    /// <summary>Registers a resource to dispose (with <c>Dispose</c>), in reverse order of registration, after the run has returned.</summary>
    /// <typeparam name="T">The resource's type.</typeparam>
    /// <param name="teardown">The teardown.</param>
    /// <param name="resource">The resource.</param>
    /// <param name="name">Its name in errors and logs; its type name by default.</param>
    /// <exception cref="ArgumentNullException"><paramref name="teardown"/> or <paramref name="resource"/> is <see langword="null"/>.</exception>
    /// <exception cref="ClosedException">The teardown has begun; dispose the resource yourself.</exception>
    /// <exception cref="ObjectDisposedException">The teardown has been disposed.</exception>
    public static void Add<T>(this OrderedTeardown teardown, T resource, string? name = null)
        where T : class, IDisposable
    {
        Guard.NotNull(teardown);
        Guard.NotNull(resource);
        teardown.Add(_ => DisposeSync(resource), name ?? resource.GetType().Name);
    }

    /// <summary>Registers a resource the gate disposes (with <c>Dispose</c>) on stop, after the run returned, in reverse order of registration.</summary>
    /// <typeparam name="T">The resource's type.</typeparam>
    /// <param name="context">The start's context.</param>
    /// <param name="resource">The resource.</param>
    /// <param name="name">Its name in errors and logs; its type name by default.</param>
    /// <returns><paramref name="resource"/>, for chaining.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="context"/> or <paramref name="resource"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The start delegate has already returned.</exception>
    public static T Own<T>(this LifecycleContext context, T resource, string? name = null)
        where T : class, IDisposable
    {
        Guard.NotNull(context);
        Guard.NotNull(resource);
        context.Register(_ => DisposeSync(resource), name ?? resource.GetType().Name);
        return resource;
    }

    private static Task DisposeSync(IDisposable resource)
    {
        resource.Dispose();
        return Task.CompletedTask;
    }
}
