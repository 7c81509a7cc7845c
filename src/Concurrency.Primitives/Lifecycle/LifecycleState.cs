using System;

namespace Concurrency.Primitives;

/// <summary>The states of a <see cref="LifecycleGate"/>.</summary>
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
    /// The start failed (start again to retry), the run faulted on its own, or a stop failed or timed out
    /// (call <see cref="LifecycleGate.StopAsync"/> again to resume the teardown where it stopped).
    /// </summary>
    Faulted = 5,
}

/// <summary>Describes one transition of a <see cref="LifecycleGate"/>.</summary>
public sealed class LifecycleStateChangedEventArgs : EventArgs
{
    internal LifecycleStateChangedEventArgs(LifecycleState previous, LifecycleState current, Exception? exception)
    {
        Previous = previous;
        Current = current;
        Exception = exception;
    }

    /// <summary>The state before the transition.</summary>
    public LifecycleState Previous { get; }

    /// <summary>The state after the transition.</summary>
    public LifecycleState Current { get; }

    /// <summary>The failure that caused a transition to <see cref="LifecycleState.Faulted"/>; otherwise <see langword="null"/>.</summary>
    public Exception? Exception { get; }
}
