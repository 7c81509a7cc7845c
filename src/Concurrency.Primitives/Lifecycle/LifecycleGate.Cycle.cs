using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary>The start cycle's machinery: the start, the run, the stop drive, and the ordered state-change events.</summary>
public sealed partial class LifecycleGate
{
    private async Task RunStartAsync(Cycle cycle)
    {
        Exception? failure = null;
        try
        {
            if (_start is { } start)
            {
                await start(cycle.Context, cycle.StartCancellation.Token).ConfigureAwait(false);
            }
        }
        catch (Exception exception)
        {
            failure = exception;
        }

        cycle.Context.Close();
        if (failure is not null)
        {
            await FailStartAsync(cycle, failure).ConfigureAwait(false);
            return;
        }

        // Registered after a successful start only, and last, so it runs first of the stop steps.
        if (_stop is { } stop)
        {
            cycle.Teardown.Add(stop, "stop");
        }

        bool resumeStop;
        lock (_lock)
        {
            cycle.StartSucceeded = true;
            cycle.StartFinished = true;
            if (_run is not null && cycle.StopRequested)
            {
                // A stop came first: the run is still invoked (every accepted start is), with its token cancelled.
                cycle.CancelRunQuietly();
            }

            Transition(LifecycleState.Running);
            _whenRunning.TrySetResult(true); // under the lock: this cycle's signal, never a later cycle's

            // A stop that gave up waiting for this start (its bound passed) left no stop in flight: finish what it asked.
            resumeStop = cycle.StopRequested && cycle.StopSignal is null;
        }

        Task? run = null;
        if (_run is { } runDelegate)
        {
            var token = cycle.RunCancellation.Token;
            run = WithOneOutcome(Task.Run(() => runDelegate(token), CancellationToken.None)); // always invoked, even if already cancelled
            cycle.Teardown.SetRun(run, cycle.RunCancellation); // before Started: no stop tears down until it is set
        }

        cycle.Started.TrySetResult(true);
        if (resumeStop)
        {
            ResumeStopInBackground();
        }

        if (run is not null)
        {
            await ObserveRunAsync(cycle, run).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The run as a task that throws one exception however often it is awaited. A task cancelled without an exception of
    /// its own (<c>Task.FromCanceled</c>, a <c>Task.Delay</c> on another token) throws a new
    /// <see cref="TaskCanceledException"/> at each await; awaited once here, the exception it threw is kept as this task's,
    /// so the fault the gate reports (RunFaulted, <see cref="Fault"/>) is the one its stop and <see cref="Completion"/> throw.
    /// </summary>
    private static async Task WithOneOutcome(Task run) => await run.ConfigureAwait(false);

    private async Task FailStartAsync(Cycle cycle, Exception failure)
    {
        Exception? cleanupFailure = null;
        try
        {
            // Release what the failed start acquired; the stop delegate was never registered.
            await cycle.Teardown.ExecuteAsync().ConfigureAwait(false);
        }
        catch (Exception exception)
        {
            cleanupFailure = exception;
            LifecycleGateLog.StartCleanupFailed(_logger, _name, exception);
        }

        // Only a cancellation the stop asked for (its token cancelled) is "cancelled by a stop"; a start that failed on its
        // own with an OperationCanceledException (an HttpClient timeout) reports its own error.
        var cancelledByStop = failure is OperationCanceledException && cycle.StartCancellation.IsCancellationRequested;
        lock (_lock)
        {
            cycle.StartFinished = true;
            cycle.CancelledByStop = cancelledByStop;
            cycle.CleanupFailure = cleanupFailure;
            var whenRunning = _whenRunning;
            if (cancelledByStop)
            {
                whenRunning.TrySetCanceled();
            }
            else
            {
                whenRunning.TrySetException(failure);
                _ = whenRunning.Task.Exception; // observed: reported by StartAsync and the log
            }

            if (cleanupFailure is not null)
            {
                // What the start acquired is not all released: the gate waits in StopFailed, and StopAsync resumes the release.
                Transition(LifecycleState.StopFailed, cleanupFailure);
            }
            else if (cancelledByStop)
            {
                Transition(LifecycleState.Stopped);
                _whenStopped.TrySetResult(true);
                ResetWhenRunningLocked();
            }
            else
            {
                Transition(LifecycleState.StartFailed, failure);
                if (_closed)
                {
                    // Closed during this start: nothing will run any more, as when a StartFailed gate is closed (MarkClosed).
                    _whenStopped.TrySetResult(true);
                }
            }
        }

        if (!cancelledByStop)
        {
            LifecycleGateLog.StartFailed(_logger, _name, failure);
            CountFault("start");
        }

        cycle.Started.TrySetException(cancelledByStop ? new OperationCanceledException($"The start of gate '{_name}' was cancelled by a stop.", failure) : failure);
        _ = cycle.Started.Task.Exception;
    }

    private async Task ObserveRunAsync(Cycle cycle, Task run)
    {
        try
        {
            await run.ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException) when (cycle.RunCancellation.IsCancellationRequested)
        {
            return;
        }
        catch (Exception fault)
        {
            var faultedOnItsOwn = false;
            lock (_lock)
            {
                if (!cycle.StopRequested && ReferenceEquals(_cycle, cycle) && State == LifecycleState.Running)
                {
                    Transition(LifecycleState.RunFaulted, fault);
                    faultedOnItsOwn = true;
                }
            }

            if (faultedOnItsOwn)
            {
                LifecycleGateLog.RunFaulted(_logger, _name, fault);
                CountFault("run");
            }
        }
    }

    /// <summary>Drives one stop of <paramref name="cycle"/>; started on the thread pool by <see cref="StopAsync"/>.</summary>
    private async Task DriveStopAsync(Cycle cycle, TaskCompletionSource<bool> signal)
    {
        var started = _time.GetTimestamp();
        cycle.CancelStartQuietly();
        var startWasInFlight = !cycle.Started.Task.IsCompleted;
        if (startWasInFlight)
        {
            // Bounded like every stop step: a start that ignores its token must not hold the stop (or a dispose) forever.
            if (!await Signals.WaitWithinAsync(cycle.Started.Task, _shutdownTimeout, _time, CancellationToken.None).ConfigureAwait(false)
                && GiveUpWaitingForStart(cycle))
            {
                LifecycleGateLog.StepTimedOut(_logger, "start", _shutdownTimeout);
                signal.TrySetException(new LifecycleStopTimeoutException(_name, "start", _shutdownTimeout, runAbandoned: false));
                _ = signal.Task.Exception; // observed: thrown to the stop callers and logged
                return;
            }

            // Done, or its outcome was decided just as the bound passed (its signal follows at once). A start that failed,
            // or was cancelled by this stop, released what it acquired in FailStartAsync, or says it could not.
            await AwaitQuietly(cycle.Started.Task).ConfigureAwait(false);
        }

        Exception? releaseFailure = null;
        lock (_lock)
        {
            if (!cycle.StartSucceeded && cycle.Teardown.IsCompleted)
            {
                // The start failed and released everything: nothing to tear down. This stop stopped the gate if it was the
                // one that cancelled the start (the gate's state, and its cycle, may already belong to a restart).
                signal.TrySetResult(cycle.CancelledByStop);
                return;
            }

            if (!cycle.StartSucceeded && startWasInFlight)
            {
                // The start this stop waited for failed, and releasing what it had acquired failed too: that failure is this
                // stop's, as a failing stop step's would be. The gate waits in StopFailed; the next stop resumes the release.
                cycle.StopSignal = null;
                releaseFailure = cycle.CleanupFailure;
            }
        }

        if (releaseFailure is not null)
        {
            signal.TrySetException(releaseFailure);
            _ = signal.Task.Exception; // observed: thrown to the stop callers and logged (2009)
            return;
        }

        lock (_lock)
        {

            // Something of this cycle is not torn down, so no new cycle can have started (StartAsync refuses until it is).
            Debug.Assert(ReferenceEquals(_cycle, cycle), "Only the current cycle is ever torn down.");
            Transition(LifecycleState.Stopping);
        }

        Exception? failure = null;
        try
        {
            await cycle.Teardown.ExecuteAsync().ConfigureAwait(false);
        }
        catch (Exception exception)
        {
            failure = exception;
        }

        var completed = cycle.Teardown.IsCompleted;
        lock (_lock)
        {
            if (completed)
            {
                // The run's own fault, if any, is what this stop throws: it is also the end of the gate's life if closed.
                _runFault = failure;
                Transition(LifecycleState.Stopped);
                _whenStopped.TrySetResult(true); // under the lock: this cycle's signal, before a restart can replace it
                ResetWhenRunningLocked();
            }
            else
            {
                // Resumable: the next StopAsync drives the teardown again from where it stopped.
                cycle.StopSignal = null;
                Transition(LifecycleState.StopFailed, failure);
            }
        }

        if (completed && _metrics.StopDuration.Enabled)
        {
            _metrics.StopDuration.Record(_time.GetElapsedTime(started).TotalSeconds, _metricTag);
        }

        if (failure is not null && !completed)
        {
            LifecycleGateLog.StopFailed(_logger, _name, failure);
            CountFault("stop");
        }

        // The stop's callers are released before StateChanged runs (its handlers run on their own work item anyway).
        if (failure is null)
        {
            signal.TrySetResult(true);
        }
        else
        {
            signal.TrySetException(failure);
            _ = signal.Task.Exception; // observed: thrown to the stop callers and logged
        }
    }

    /// <summary>
    /// A stop's wait for a start that ignores its token has timed out: give up, unless the start finished meanwhile. The
    /// stop stays requested, and the start, when it returns, finishes it (see <see cref="RunStartAsync"/>).
    /// </summary>
    private bool GiveUpWaitingForStart(Cycle cycle)
    {
        lock (_lock)
        {
            if (cycle.StartFinished)
            {
                return false;
            }

            cycle.StopSignal = null;
            return true;
        }
    }

    private static async Task AwaitQuietly(Task task)
    {
        try
        {
            await task.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Only its completion matters here; its outcome is reported elsewhere.
        }
    }

    private void ResumeStopInBackground() =>
        _ = StopAsync(CancellationToken.None).ContinueWith(
            static stop => _ = stop.Exception, // logged by the stop itself; readable as Fault
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

    private static async Task<bool> WaitForStopAsync(Task<bool> stop, bool drove, CancellationToken cancellationToken)
    {
        var stopped = await Signals.WaitAsync(stop, cancellationToken).ConfigureAwait(false);
        return drove && stopped;
    }

    /// <summary>
    /// Changes the state; called under <see cref="_lock"/>. The event is raised on its own work item (see
    /// <see cref="RaiseEvents"/>), never by the thread that made the transition: a handler that waits for the gate (for a
    /// stop, or for the state it is told about) can then never hold up the work it waits for.
    /// </summary>
    private void Transition(LifecycleState next, Exception? exception = null)
    {
        Debug.Assert(Monitor.IsEntered(_lock), "Transitions happen under the gate's lock.");
        var previous = State;
        if (previous == next)
        {
            return;
        }

        Volatile.Write(ref _state, (int)next);
        _fault = next is LifecycleState.StartFailed or LifecycleState.RunFaulted or LifecycleState.StopFailed ? exception : null;
        _events.Enqueue(new LifecycleStateChangedEventArgs(previous, next, exception));
        TryCompleteLocked();
        if (!_dispatching)
        {
            _dispatching = true;
            _ = Task.Run(RaiseEvents, CancellationToken.None);
        }
    }

    /// <summary>
    /// Raises the queued <see cref="StateChanged"/> events one at a time, in order, outside the lock, and logs each
    /// transition (the logger is the user's code too). One such work item runs at a time.
    /// </summary>
    private void RaiseEvents()
    {
        while (true)
        {
            LifecycleStateChangedEventArgs change;
            lock (_lock)
            {
                if (_events.Count == 0)
                {
                    _dispatching = false;
                    return;
                }

                change = _events.Dequeue();
            }

            LifecycleGateLog.Transition(_logger, _name, change.Previous, change.Current);
            if (_metrics.Transitions.Enabled)
            {
                _metrics.Transitions.Add(1, _metricTag, new KeyValuePair<string, object?>("gate.state", change.Current.ToString()));
            }

            // Each handler on its own: one that throws is logged, and the handlers after it still see the change.
            if (StateChanged is { } handlers)
            {
                foreach (var handler in handlers.GetInvocationList())
                {
                    try
                    {
                        ((EventHandler<LifecycleStateChangedEventArgs>)handler)(this, change);
                    }
                    catch (Exception exception)
                    {
                        LifecycleGateLog.HandlerFailed(_logger, _name, exception);
                    }
                }
            }
        }
    }

    /// <summary>
    /// Once stopped, <see cref="WhenRunning"/> refers to the next start: a fresh signal, or, when no start can come (no
    /// restart allowed, or closed), a cancelled one. Called under the lock.
    /// </summary>
    private void ResetWhenRunningLocked()
    {
        if (_whenRunning.Task.IsCompleted)
        {
            _whenRunning = Signals.Create();
        }

        if (!_allowRestart || _closed)
        {
            _whenRunning.TrySetCanceled();
        }
    }

    /// <summary>Completes <see cref="Completion"/> once the gate is closed and nothing is left to tear down. Called under the lock.</summary>
    private void TryCompleteLocked()
    {
        if (!_closed || _completion.Task.IsCompleted || State is not (LifecycleState.NotStarted or LifecycleState.Stopped or LifecycleState.StartFailed))
        {
            return;
        }

        if (_runFault is { } runFault)
        {
            _completion.TrySetException(runFault);
            _ = _completion.Task.Exception; // observed: thrown by the stop and logged
        }
        else
        {
            _completion.TrySetResult(true);
        }
    }

    private void CountFault(string phase)
    {
        if (_metrics.Faults.Enabled)
        {
            _metrics.Faults.Add(1, _metricTag, new KeyValuePair<string, object?>("gate.phase", phase));
        }
    }

    /// <summary>One start cycle: its start, its run and its teardown.</summary>
    private sealed class Cycle
    {
        public Cycle(OrderedTeardown teardown)
        {
            Teardown = teardown;
            Context = new LifecycleContext(teardown);
        }

        public TaskCompletionSource<bool> Started { get; } = Signals.Create();

        public CancellationTokenSource StartCancellation { get; } = new();

        public CancellationTokenSource RunCancellation { get; } = new();

        public OrderedTeardown Teardown { get; }

        public LifecycleContext Context { get; }

        /// <summary>Whether the start delegate succeeded. Guarded by the gate's lock.</summary>
        public bool StartSucceeded { get; set; }

        /// <summary>Whether the start has finished, successfully or not (its outcome is decided). Guarded by the gate's lock.</summary>
        public bool StartFinished { get; set; }

        /// <summary>Whether the start failed because a stop cancelled its token. Guarded by the gate's lock.</summary>
        public bool CancelledByStop { get; set; }

        /// <summary>Why releasing what a failed start acquired failed, if it did. Guarded by the gate's lock.</summary>
        public Exception? CleanupFailure { get; set; }

        /// <summary>Whether a stop was requested. Guarded by the gate's lock.</summary>
        public bool StopRequested { get; set; }

        public TaskCompletionSource<bool>? StopSignal { get; set; }

        /// <summary>Whether a stop has anything to do: the start is still in flight, or something is not yet torn down.</summary>
        public bool NeedsStop => !Started.Task.IsCompleted || !Teardown.IsCompleted;

        public void CancelStartQuietly() => CancelQuietly(StartCancellation);

        public void CancelRunQuietly() => CancelQuietly(RunCancellation);

        private static void CancelQuietly(CancellationTokenSource source)
        {
            try
            {
                source.Cancel();
            }
            catch (AggregateException)
            {
                // Callbacks on these tokens are the start's and run's own code; they report through their tasks.
            }
        }
    }
}
