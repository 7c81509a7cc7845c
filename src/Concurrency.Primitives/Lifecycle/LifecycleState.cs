using System;

namespace Concurrency.Primitives;

/// <summary>The states of a <see cref="LifecycleGate"/>.</summary>
/// <remarks>
/// The three failure states say what to do next: after <see cref="StartFailed"/>, start again (nothing is left to tear
/// down); after <see cref="RunFaulted"/> or <see cref="StopFailed"/>, stop (the teardown is not finished).
/// </remarks>
public enum LifecycleState
{
    /// <summary>Never started.</summary>
    NotStarted = 0,

    /// <summary>The start delegate is running.</summary>
    Starting = 1,

    /// <summary>The start succeeded; the run delegate (if any) has been invoked.</summary>
    Running = 2,

    /// <summary>A stop is tearing down: cancelling the run, awaiting it, then the stop steps in reverse order.</summary>
    Stopping = 3,

    /// <summary>Torn down completely. A new start is accepted only with <see cref="LifecycleGateOptions.AllowRestart"/>.</summary>
    Stopped = 4,

    /// <summary>
    /// The start delegate failed. What it had acquired was released and the stop delegate was not called; a new
    /// <see cref="LifecycleGate.StartAsync"/> retries. <see cref="LifecycleGate.Fault"/> holds the exception.
    /// </summary>
    StartFailed = 5,

    /// <summary>
    /// The run faulted on its own while the gate was running. <see cref="LifecycleGate.StopAsync"/> tears down and then
    /// throws the run's exception; <see cref="LifecycleGate.Fault"/> holds it.
    /// </summary>
    RunFaulted = 6,

    /// <summary>
    /// A stop step failed or timed out, or the run did not return in time: the teardown stopped at that step. <see cref="LifecycleGate.StopAsync"/>
    /// resumes it there; <see cref="LifecycleGate.Fault"/> holds the exception.
    /// </summary>
    StopFailed = 7,
}

/// <summary>Describes one transition of a <see cref="LifecycleGate"/>.</summary>
public sealed class LifecycleStateChangedEventArgs : EventArgs
{
    /// <summary>Creates the description of a transition (the gate raises these; a test of a handler may build one).</summary>
    /// <param name="previous">The state before the transition.</param>
    /// <param name="current">The state after it.</param>
    /// <param name="exception">The failure that caused a transition to a failure state, or <see langword="null"/>.</param>
    public LifecycleStateChangedEventArgs(LifecycleState previous, LifecycleState current, Exception? exception)
    {
        Previous = previous;
        Current = current;
        Exception = exception;
    }

    /// <summary>The state before the transition.</summary>
    public LifecycleState Previous { get; }

    /// <summary>The state after the transition.</summary>
    public LifecycleState Current { get; }

    /// <summary>
    /// The failure that caused a transition to <see cref="LifecycleState.StartFailed"/>, <see cref="LifecycleState.RunFaulted"/>
    /// or <see cref="LifecycleState.StopFailed"/>; otherwise <see langword="null"/>.
    /// </summary>
    public Exception? Exception { get; }
}
