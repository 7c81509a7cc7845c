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

        Task? run = null;
        lock (_lock)
        {
            cycle.StartSucceeded = true;
            if (_run is not null && cycle.StopRequested)
            {
                // A stop came first: the run is still invoked (every accepted start is), with its token cancelled.
                cycle.CancelRunQuietly();
            }

            Transition(LifecycleState.Running);
        }

        if (_run is { } runDelegate)
        {
            var token = cycle.RunCancellation.Token;
            run = Task.Run(() => runDelegate(token), CancellationToken.None); // always invoked, even if already cancelled
            cycle.Teardown.SetRun(run, cycle.RunCancellation);
        }

        _whenRunning.TrySetResult(true);
        cycle.Started.TrySetResult(true); // before the events, as for a stop: a handler may wait for StartAsync
        DispatchEvents();
        if (run is not null)
        {
            await ObserveRunAsync(cycle, run).ConfigureAwait(false);
        }
    }

    private async Task FailStartAsync(Cycle cycle, Exception failure)
    {
        try
        {
            // Release what the failed start acquired; the stop delegate was never registered.
            await cycle.Teardown.ExecuteAsync().ConfigureAwait(false);
        }
        catch (Exception cleanupFailure)
        {
            LifecycleGateLog.StartCleanupFailed(_logger, _name, cleanupFailure);
        }

        bool cancelledByStop;
        TaskCompletionSource<bool> whenRunning;
        lock (_lock)
        {
            cancelledByStop = cycle.StopRequested && failure is OperationCanceledException;
            Transition(cancelledByStop ? LifecycleState.Stopped : LifecycleState.StartFailed, cancelledByStop ? null : failure);
            whenRunning = _whenRunning;
        }

        if (cancelledByStop)
        {
            whenRunning.TrySetCanceled();
            _whenStopped.TrySetResult(true);
            lock (_lock)
            {
                ResetWhenRunningLocked();
            }
        }
        else
        {
            LifecycleGateLog.StartFailed(_logger, _name, failure);
            CountFault("start");
            whenRunning.TrySetException(failure);
            _ = whenRunning.Task.Exception; // observed: reported by StartAsync and the log
        }

        cycle.Started.TrySetException(cancelledByStop ? new OperationCanceledException($"The start of gate '{_name}' was cancelled by a stop.", failure) : failure);
        _ = cycle.Started.Task.Exception;
        DispatchEvents();
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
                DispatchEvents();
            }
        }
    }

    /// <summary>Drives one stop of <paramref name="cycle"/>; started on the thread pool by <see cref="StopAsync"/>.</summary>
    private async Task DriveStopAsync(Cycle cycle, TaskCompletionSource<bool> signal)
    {
        var started = _time.GetTimestamp();
        cycle.CancelStartQuietly();
        try
        {
            await cycle.Started.Task.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The start failed or was cancelled by this stop: FailStartAsync released what it acquired.
        }

        if (!cycle.StartSucceeded)
        {
            signal.TrySetResult(State == LifecycleState.Stopped);
            return;
        }

        lock (_lock)
        {
            Debug.Assert(ReferenceEquals(_cycle, cycle), "Only the current cycle is ever stopped: a new cycle starts only after this one is Stopped.");
            Transition(LifecycleState.Stopping);
        }

        DispatchEvents();
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
                ResetWhenRunningLocked();
            }
            else
            {
                // Resumable: the next StopAsync drives the teardown again from where it stopped.
                cycle.StopSignal = null;
                Transition(LifecycleState.StopFailed, failure);
            }
        }

        if (completed)
        {
            _whenStopped.TrySetResult(true);
            if (LifecycleGateMetrics.StopDuration.Enabled)
            {
                LifecycleGateMetrics.StopDuration.Record(_time.GetElapsedTime(started).TotalSeconds, _metricTag);
            }
        }

        if (failure is not null && !completed)
        {
            LifecycleGateLog.StopFailed(_logger, _name, failure);
            CountFault("stop");
        }

        // The stop's callers are released before StateChanged runs: a handler of the new state that waits for StopAsync
        // (joining this stop, or finding it done) must not wait for its own return.
        if (failure is null)
        {
            signal.TrySetResult(true);
        }
        else
        {
            signal.TrySetException(failure);
            _ = signal.Task.Exception; // observed: thrown to the stop callers and logged
        }

        DispatchEvents();
    }

    private static async Task<bool> WaitForStopAsync(Task<bool> stop, bool drove, CancellationToken cancellationToken)
    {
        var stopped = await Signals.WaitAsync(stop, cancellationToken).ConfigureAwait(false);
        return drove && stopped;
    }

    /// <summary>Changes the state; called under <see cref="_lock"/>. The event is raised later by <see cref="DispatchEvents"/>.</summary>
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
        LifecycleGateLog.Transition(_logger, _name, previous, next);
        if (LifecycleGateMetrics.Transitions.Enabled)
        {
            LifecycleGateMetrics.Transitions.Add(1, _metricTag, new KeyValuePair<string, object?>("gate.state", next.ToString()));
        }
    }

    /// <summary>Raises queued <see cref="StateChanged"/> events one at a time, in order, outside the lock.</summary>
    private void DispatchEvents()
    {
        while (true)
        {
            LifecycleStateChangedEventArgs change;
            lock (_lock)
            {
                if (_dispatching || _events.Count == 0)
                {
                    return;
                }

                _dispatching = true;
                change = _events.Dequeue();
            }

            try
            {
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
            finally
            {
                lock (_lock)
                {
                    _dispatching = false;
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
        if (LifecycleGateMetrics.Faults.Enabled)
        {
            LifecycleGateMetrics.Faults.Add(1, _metricTag, new KeyValuePair<string, object?>("gate.phase", phase));
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

        public bool StartSucceeded { get; set; }

        public bool StopRequested { get; set; }

        public TaskCompletionSource<bool>? StopSignal { get; set; }

        /// <summary>Whether a stop has anything to do: the start is still in flight, or a successful start is not yet torn down.</summary>
        public bool NeedsStop => !Started.Task.IsCompleted || (StartSucceeded && !Teardown.IsCompleted);

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
